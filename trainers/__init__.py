"""agentgym.trainers: the torch trainer (installs with the ``train`` extra).

Modules: ``models`` (load a local causal LM, LoRA, KL reference), ``chat`` (token-in/token-out
multi-turn sequences), ``generation`` (backends + ``TransformersPolicy``), ``vllm_backend``,
``batch``, ``losses``, ``info_gain`` (gold-answer scorer), ``credit_bridge``, ``config``
(recipes), ``trainer``, ``metrics``, ``tiny`` (the embedded tiny model), ``cli``.

Importing this package (or ``agentgym.trainers.cli``) does not import torch, so the core CLI
can mount the trainer's commands without slowing down ``agentgym --help``.
"""

__all__: list[str] = []  # the modules above are the API (importing a package must not import torch)
