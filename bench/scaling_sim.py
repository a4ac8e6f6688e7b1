"""A discrete-event simulation of many concurrent episodes spread over N rollout hosts.

It checks the sizing in docs/SCALING.md: the closed-form estimate there (throughput = the least
of concurrency / turn time and each resource's capacity) against queues that actually form. Pure
Python, no dependency, seconds to run. The costs are inputs, defaulting to what was measured on
this repository's machine (docs/SCALING.md quotes the commands and load averages); generation
cannot be measured here (no GPU, no weights), so the inference fleet's capacity is an input.

Model, per episode (a closed system: a finished episode is replaced at once, so ``--episodes``
stay in flight; they start holding their sandboxes, with ``--pool-warm`` spares per host): take a
warm sandbox from its host's pool (the pool refills through that host's Docker engine, a fresh
container per episode, as the code envs do); then per turn generate ``--gen-tokens`` on the
inference fleet (continuous batching: ``--gpu-tokens-per-s`` / ``--decode-tps`` sequences at
once, each at ``--decode-tps``), then step on the host (engine + ``--sandbox-calls`` executor
calls on one of its cores), with the driver spending ``--driver-us`` per step (the trainer's split,
where the engine runs on the driver) and ``--store-us`` per finished trajectory (its single store).

    .venv/bin/python bench/scaling_sim.py                       # 10,000 episodes over 1..64 hosts
    .venv/bin/python bench/scaling_sim.py --hosts 8 --split workers --driver-us 0
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class Resource:
    """``servers`` identical servers, FIFO queue; tracks busy time for utilisation."""

    def __init__(self, sim: Sim, servers: int):
        self.sim, self.free, self.servers = sim, servers, servers
        self.queue: deque[tuple[float, Callable[[], None]]] = deque()
        self.busy = 0.0

    def use(self, seconds: float, then: Callable[[], None]) -> None:
        if self.free:
            self.free -= 1
            self._start(seconds, then)
        else:
            self.queue.append((seconds, then))

    def _start(self, seconds: float, then: Callable[[], None]) -> None:
        self.busy += seconds

        def done() -> None:
            if self.queue:
                self._start(*self.queue.popleft())
            else:
                self.free += 1
            then()

        self.sim.at(seconds, done)

    def utilisation(self, span: float) -> float:
        """Busy fraction over ``span`` seconds (service time is booked when it starts)."""
        return min(1.0, self.busy / (self.servers * span))


class Sim:
    def __init__(self) -> None:
        self.now = 0.0
        self.events: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = itertools.count()

    def at(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self.events, (self.now + delay, next(self.seq), fn))

    def run(self, until: float) -> None:
        while self.events and self.events[0][0] <= until:
            self.now, _, fn = heapq.heappop(self.events)
            fn()


@dataclass
class Config:
    episodes: int = 10_000
    hosts: int = 8
    cores: int = 32  # per host, for env steps and sandboxes
    ram_gib: float = 256.0  # per host
    container_mib: float = 24.0  # one sandbox: 7.8 MiB idle (measured) + a running call's process (budget)
    turns: float = 8.0  # mean turns per episode (geometric)
    gen_tokens: int = 256  # per turn
    decode_tps: float = 50.0  # tokens/s of one sequence inside a batch
    gpu_tokens_per_s: float = 500_000.0  # the whole inference fleet (an input: not measurable here)
    sandbox_calls: float = 1.0  # executor calls per step
    sandbox_cpu_ms: float = 3.6  # CPU of one executor call (fork + Python + reply): 2 cores / 554 calls/s
    engine_us: float = 16.0  # engine (+ its store) per step, on the host
    acquire_ms: float = 1.7  # warm pool acquire
    container_starts_per_s: float = 3.9  # fresh containers one host's Docker engine starts per second
    pool_warm: int = 64  # spare warm containers per host when the run starts
    driver_us: float = 0.0  # driver CPU per step (the trainer's split: an actor call per step)
    store_us: float = 1600.0  # driver CPU per finished trajectory (JSONL append, 8 turns of 256 tokens)
    seconds: float = 260.0
    warmup: float = 200.0
    seed: int = 0


@dataclass
class Result:
    steps_per_s: float
    episodes_per_s: float
    turn_s: float
    cpu: float
    gpu: float
    driver: float
    docker: float
    pool_waits: int
    ram_gib: float
    estimate: float
    bound: str


def estimate(c: Config) -> tuple[float, str]:
    """The closed form of docs/SCALING.md: the least of the latency bound and each capacity, steps/s."""
    slots = c.gpu_tokens_per_s / c.decode_tps
    gen = c.gen_tokens / c.decode_tps
    step = c.sandbox_calls * c.sandbox_cpu_ms / 1e3 + c.engine_us / 1e6
    bounds = {
        "latency": c.episodes / (gen + step),
        "inference fleet": slots / gen,
        "host CPUs": c.hosts * c.cores / step,
        "driver": 1 / (c.driver_us / 1e6 + c.store_us / 1e6 / c.turns) if c.driver_us or c.store_us else float("inf"),
        "Docker engines": c.hosts * c.container_starts_per_s * c.turns,
    }
    name = min(bounds, key=bounds.__getitem__)
    return bounds[name], name


def simulate(c: Config) -> Result:
    sim, rng = Sim(), random.Random(c.seed)
    gpu = Resource(sim, max(1, round(c.gpu_tokens_per_s / c.decode_tps)))
    cpus = [Resource(sim, c.cores) for _ in range(c.hosts)]
    dockers = [Resource(sim, 1) for _ in range(c.hosts)]
    driver = Resource(sim, 1)
    per_host = [c.episodes // c.hosts + (h < c.episodes % c.hosts) for h in range(c.hosts)]
    warm = [c.pool_warm] * c.hosts  # each running episode already holds its container
    waiting: list[deque[Callable[[], None]]] = [deque() for _ in range(c.hosts)]
    counted = {"steps": 0, "episodes": 0, "turn_time": 0.0, "pool_waits": 0}
    p_end = 1 / c.turns

    def counting() -> bool:
        return sim.now >= c.warmup

    def refill(h: int) -> None:
        def ready() -> None:
            if waiting[h]:
                waiting[h].popleft()()
            else:
                warm[h] += 1
        dockers[h].use(1 / c.container_starts_per_s, ready)

    def start(h: int) -> None:
        if warm[h]:
            warm[h] -= 1
            sim.at(c.acquire_ms / 1e3, lambda: turn(h))
        else:
            counted["pool_waits"] += counting()
            waiting[h].append(lambda: sim.at(c.acquire_ms / 1e3, lambda: turn(h)))

    def turn(h: int) -> None:
        began = sim.now

        def stepped() -> None:
            if counting():
                counted["steps"] += 1
                counted["turn_time"] += sim.now - began
            if rng.random() < p_end:  # the episode ends: its trajectory goes to the store, a new one starts
                counted["episodes"] += counting()
                refill(h)
                driver.use(c.store_us / 1e6, lambda: None)
                start(h)
            else:
                turn(h)

        def generated() -> None:
            work = c.sandbox_calls * c.sandbox_cpu_ms / 1e3 + c.engine_us / 1e6
            if c.driver_us:
                driver.use(c.driver_us / 1e6, lambda: cpus[h].use(work, stepped))
            else:
                cpus[h].use(work, stepped)

        gpu.use(c.gen_tokens / c.decode_tps, generated)

    for h in range(c.hosts):
        for _ in range(per_host[h]):
            sim.at(rng.random() * c.gen_tokens / c.decode_tps, lambda h=h: turn(h))  # staggered starts
    resources = [gpu, driver, *cpus, *dockers]

    def measure() -> None:  # utilisation counts from the end of the warm-up
        for r in resources:
            r.busy = 0.0

    sim.at(c.warmup, measure)
    sim.run(c.seconds)
    span = c.seconds - c.warmup
    bound, name = estimate(c)
    return Result(
        steps_per_s=counted["steps"] / span,
        episodes_per_s=counted["episodes"] / span,
        turn_s=counted["turn_time"] / max(counted["steps"], 1),
        cpu=max(r.utilisation(span) for r in cpus),
        gpu=gpu.utilisation(span),
        driver=driver.utilisation(span),
        docker=max(r.utilisation(span) for r in dockers),
        pool_waits=counted["pool_waits"],
        ram_gib=max(per_host) * c.container_mib / 1024,
        estimate=bound,
        bound=name,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Config()
    for name, value in vars(defaults).items():
        if name != "hosts":
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--hosts", type=int, nargs="+", default=[4, 16, 32, 64, 96])
    parser.add_argument("--split", choices=["workers", "trainer"], default="workers",
                        help="workers: engine and policy in the actors (agentgym rollout --ray-workers); trainer: "
                             "engine on the driver, envs in actors (rollout.ray), which costs --driver-us per step")
    args = vars(parser.parse_args())
    hosts, split = args.pop("hosts"), args.pop("split")
    base = Config(**args)
    if split == "trainer" and not base.driver_us:
        base.driver_us = 1081.0  # the env pool's actor call per step, measured (docs/SCALING.md)
    print(f"# {base.episodes:,} concurrent episodes, split={split}, {base.turns:g} turns, {base.gen_tokens} tokens/turn, "
          f"fleet {base.gpu_tokens_per_s:,.0f} tok/s at {base.decode_tps:g} tok/s/seq, {base.cores} cores and "
          f"{base.ram_gib:g} GiB per host, {base.container_mib:g} MiB per sandbox")
    print(f"{'hosts':>5} {'eps/host':>8} {'RAM GiB':>8} {'steps/s':>8} {'estimate':>8} {'bound':>15} {'turn s':>7} "
          f"{'CPU':>5} {'GPU':>5} {'driver':>6} {'docker':>6} {'pool waits':>10}")
    for n in hosts:
        c = Config(**{**vars(base), "hosts": n})
        r = simulate(c)
        fits = "" if r.ram_gib <= c.ram_gib * 0.8 else "!"
        print(f"{n:>5} {c.episodes // n:>8} {r.ram_gib:>7.0f}{fits:1} {r.steps_per_s:>8.0f} {r.estimate:>8.0f} "
              f"{r.bound:>15} {r.turn_s:>7.2f} {r.cpu:>5.0%} {r.gpu:>5.0%} {r.driver:>6.0%} {r.docker:>6.0%} "
              f"{r.pool_waits:>10}")
    print("(! : the host's sandboxes need more than 80% of its RAM; utilisation is the busiest host's)")


if __name__ == "__main__":
    main()
