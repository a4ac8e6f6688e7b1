"""An unforgeable judge for dataset code problems: assert-style, call-based and stdin/stdout tests.

Assert-style tests (HumanEval's ``check(candidate)``, MBPP's ``assert f(x) == y``) carry their
expected values, so they must run inside the sandbox, where the submission runs too. The judge
keeps the two apart:

* the **harness** (one sandbox call, a fresh process) makes itself non-dumpable, then starts the
  submission in a **worker**: a separate, freshly exec'd interpreter (no copy of the harness's
  memory), with its capabilities dropped and its stdin/stdout/stderr on private pipes or
  /dev/null. The worker loads the trusted ``context`` (HumanEval's prompt, MBPP's setup code),
  then the submission, and answers calls: arguments in (pickled by the harness), return values
  out as *plain data only* (None, bool, int, float, complex, str, bytes, and lists, tuples,
  dicts, sets of them; exact types, no subclasses), rebuilt by the harness. An object whose
  ``__eq__`` always says True therefore never reaches a test.
* every test runs in the harness, where the submission never ran: monkeypatching ``check``,
  ``builtins``, ``unittest`` or the comparison operators in the worker changes nothing there.
  A test is one assert statement, one call case or one stdin/stdout case; each has a time limit,
  and so does the whole run. A worker that dies, hangs or exits is restarted for the next test.
  stdin/stdout programs run as a fresh process per case.
* the verdict is one line the harness writes after the last test, prefixed with a random
  per-run **nonce** the host put into the harness's source. The submission never sees it (it
  is not in the worker's memory, argv, environment or files, and the harness is not
  ptrace-able); its own output never reaches the run's stdout anyway. A run without that line
  (the submission killed the harness, say) fails every test. Exit codes count for nothing.
* the harness imports nothing user code could have written: before its first import it drops
  from ``sys.path`` every entry that is relative or writable by its uid (the sandboxes start
  Python with ``-I`` as well), so a module an earlier submission planted in the work dir, /tmp
  or the user site (``pickle.py`` patching ``json.dumps``) is never loaded by a later judge in
  the same sandbox (CodeTests with ``max_attempts > 1``, ``judge_many``).

Expected values live only in the harness process. Mutations of arguments by the function do
not travel back (tests see return values only).
"""

from __future__ import annotations

import inspect
import json
import math
import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from agentgym.sandboxes import BaseSandbox

    from .datasets import CodeProblem
    from .sandbox import LazySandbox

__all__ = [
    "MARK", "Case", "TestSuite", "Verdict", "harness_source", "judge", "judge_many", "new_nonce", "outputs_match", "read_verdict",
    "same_value",
]

STARTUP_S = 5.0  # sandbox time beyond the tests' limits: the harness and worker start, the verdict
VERDICT_BYTES = 1 << 22  # stdout a sandbox must keep for a verdict line (up to ~13,000 failed tests' reasons)
MARK = "\x1eagentgym-verdict "  # the verdict line is MARK + nonce + " " + JSON
Kind = Literal["assert", "call", "stdio"]
Case = Any  # assert: a statement (str); call: [args, expected]; stdio: [stdin, expected stdout]


@dataclass(frozen=True)
class TestSuite:
    """A problem's hidden tests: ``kind`` says how ``cases`` are run.

    * ``"assert"``: each case is a Python statement run in the harness with ``candidate`` (and
      the entry point's name) bound to the submitted function, after ``setup`` (trusted code:
      HumanEval's ``test`` with its ``check``); it passes when it raises nothing.
    * ``"call"``: each case is ``[args, expected]``: the function is called with ``args`` and
      its return value compared with ``expected`` (floats within ``float_tolerance``, relative
      and absolute; tuples equal lists). With ``unwrap_expected`` an expected ``[v]`` also
      accepts ``v`` (APPS' call-based outputs are wrapped so).
    * ``"stdio"``: each case is ``[stdin, expected stdout]``: the program runs in a fresh
      process per case; outputs match after trailing whitespace is stripped from every line
      and trailing blank lines dropped, or, with ``float_tolerance``, token by token with
      numbers compared within it.
    """

    kind: Kind
    cases: tuple[Case, ...]
    setup: str = ""
    float_tolerance: float | None = None
    unwrap_expected: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("assert", "call", "stdio"):
            raise ValueError(f"test kind must be 'assert', 'call' or 'stdio', got {self.kind!r}")
        if not self.cases:
            raise ValueError("a test suite needs at least one case")

    def __len__(self) -> int:
        return len(self.cases)


@dataclass(frozen=True)
class Verdict:
    """What the harness reported: pass/fail per test and why each failure failed."""

    results: list[bool]
    reasons: list[str] = field(default_factory=list)  # "" for a passed test
    load_error: str | None = None

    @property
    def passed(self) -> int:
        return sum(self.results)

    def first_failure(self) -> str:
        """``"Test k: why"`` for the first failed test ("" when all passed)."""
        if self.load_error:
            return f"The code failed before any test ran: {self.load_error}"
        for i, (ok, why) in enumerate(zip(self.results, self.reasons, strict=True)):
            if not ok:
                return f"Test {i + 1}: {why}"
        return ""


def new_nonce() -> str:
    return secrets.token_hex(16)


def harness_source(*, code: str, context: str, entry_point: str | None, suite: TestSuite,
                   test_limit: float, total_limit: float, nonce: str) -> str:
    """The sandbox program that judges ``code`` against ``suite`` and reports under ``nonce``."""
    spec = {"code": code, "context": context, "entry": entry_point, "kind": suite.kind, "cases": list(suite.cases),
            "setup": suite.setup, "tol": suite.float_tolerance, "unwrap": suite.unwrap_expected,
            "test_limit": test_limit, "total_limit": total_limit, "mark": MARK, "nonce": nonce,
            "worker": _WORKER}
    return _HARNESS.replace("__SHARED__", _SHARED).replace("__SPEC__", repr(json.dumps(spec)))


def judge(sandbox: LazySandbox | BaseSandbox, *, code: str, suite: TestSuite, entry_point: str | None = None, context: str = "",
          test_limit: float = 5.0, total_limit: float = 30.0) -> Verdict:
    """Judge ``code`` in ``sandbox`` (one fresh-process call). Sandbox machinery failures raise
    :class:`~agentgym.sandboxes.SandboxError` (an ``InfraError``); anything the code does only
    fails its tests."""
    nonce = new_nonce()
    source = harness_source(code=code, context=context, entry_point=entry_point, suite=suite,
                            test_limit=test_limit, total_limit=total_limit, nonce=nonce)
    result = sandbox.run_python(source, timeout=total_limit + test_limit + STARTUP_S)
    return read_verdict(result.stdout, nonce, len(suite), timed_out=result.timed_out)


def judge_many(problems: Sequence[CodeProblem], codes: Sequence[str], *, backend: str | None = None,
               concurrency: int = 8, image: str | None = None, labels: dict[str, str] | None = None,
               test_limit: float = 5.0, total_limit: float = 30.0) -> list[Verdict]:
    """Judge ``codes[i]`` on ``problems[i]`` with ``concurrency`` sandboxes in threads (offline
    evaluation: pass@1 over a dataset, reference checks, benchmarks)."""
    from agentgym.sandboxes import DEFAULT_IMAGE, SandboxSpec, make_sandbox

    if len(problems) != len(codes):
        raise ValueError("give one code per problem")
    spec = SandboxSpec(image=image or DEFAULT_IMAGE, timeout=total_limit + test_limit + STARTUP_S, max_output=VERDICT_BYTES)

    def run(lane: int) -> list[tuple[int, Verdict]]:
        with make_sandbox(spec, backend=backend, pool="judge", labels=labels) as box:
            return [(i, judge(box, code=codes[i], suite=problems[i].tests, entry_point=problems[i].entry_point,
                              context=problems[i].context, test_limit=test_limit, total_limit=total_limit))
                    for i in range(lane, len(problems), concurrency)]

    with ThreadPoolExecutor(concurrency) as pool:
        done = dict(pair for chunk in pool.map(run, range(min(concurrency, len(problems)))) for pair in chunk)
    return [done[i] for i in range(len(problems))]


def read_verdict(stdout: str, nonce: str, total: int, *, timed_out: bool) -> Verdict:
    """The verdict line carrying ``nonce`` in a run's stdout; without one every test fails."""
    prefix = MARK + nonce + " "
    for line in stdout.split("\n"):  # not splitlines(): MARK starts with \x1e
        if line.startswith(prefix):
            report = json.loads(line[len(prefix):])
            results = [bool(ok) for ok in report["results"]]
            if len(results) != total:
                raise ValueError(f"the harness reported {len(results)} results for {total} tests")
            return Verdict(results, [str(r) for r in report["reasons"]], report.get("load_error"))
    why = "the run timed out" if timed_out else "the run ended before the judge reported"
    return Verdict([False] * total, [f"no result ({why})"] * total)


def same_value(got: Any, want: Any, tolerance: float | None = None) -> bool:
    """Return-value equality on plain data: numbers within ``tolerance`` (relative and absolute;
    default 1e-6 relative or 1e-9 absolute), bools only equal bools, tuples equal lists."""
    if type(got) is bool or type(want) is bool:
        return type(got) is type(want) and got == want
    if type(got) in (int, float) and type(want) in (int, float):
        if type(got) is int and type(want) is int:
            return got == want
        if math.isnan(got) or math.isnan(want):
            return math.isnan(got) and math.isnan(want)
        rel, tol = (1e-6, 1e-9) if tolerance is None else (tolerance, tolerance)
        return math.isclose(got, want, rel_tol=rel, abs_tol=tol)
    if type(got) in (list, tuple) and type(want) in (list, tuple):
        return len(got) == len(want) and all(same_value(g, w, tolerance) for g, w in zip(got, want, strict=True))
    if type(got) is dict and type(want) is dict:
        return got.keys() == want.keys() and all(same_value(got[k], want[k], tolerance) for k in got)
    return type(got) is type(want) and got == want


def outputs_match(got: str, want: str, tolerance: float | None = None) -> bool:
    """stdin/stdout equality: lines with trailing whitespace stripped, trailing blank lines
    dropped; with ``tolerance``, whitespace-separated tokens, numbers within it."""
    got_lines = [line.rstrip() for line in got.replace("\r\n", "\n").rstrip().split("\n")]
    want_lines = [line.rstrip() for line in want.replace("\r\n", "\n").rstrip().split("\n")]
    if got_lines == want_lines:
        return True
    if tolerance is None:
        return False
    got_tokens, want_tokens = got.split(), want.split()
    if len(got_tokens) != len(want_tokens):
        return False
    for g, w in zip(got_tokens, want_tokens, strict=True):
        if g != w:
            try:
                if not math.isclose(float(g), float(w), rel_tol=tolerance, abs_tol=tolerance):
                    return False
            except ValueError:
                return False
    return True


# The comparisons run in the harness; they are defined once, here, and shipped as source.
_SHARED = "\n\n".join(inspect.getsource(f) for f in (same_value, outputs_match))

# The submission's process. Started by the harness as ``python3 -I -c WORKER`` with its
# capabilities already dropped; talks over the stdin/stdout it was started with, which it moves
# off fds 0-2 before any untrusted code runs. Requests: 4-byte length + pickle (from the trusted
# harness); replies: 4-byte length + JSON of plain data (rebuilt, never unpickled, by the harness).
_WORKER = r'''
import json, math, os, pickle, struct, sys, types
proto_in, proto_out = os.dup(0), os.dup(1)
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)

def recv():
    head = os.read(proto_in, 4)
    if len(head) < 4:
        os._exit(0)
    size = struct.unpack(">I", head)[0]
    data = b""
    while len(data) < size:
        chunk = os.read(proto_in, size - len(data))
        if not chunk:
            os._exit(0)
        data += chunk
    return pickle.loads(data)

def send(message):
    body = json.dumps(message).encode()
    data = struct.pack(">I", len(body)) + body
    while data:
        data = data[os.write(proto_out, data):]

def plain(value):
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value if math.isfinite(value) else {"f": repr(value)}
    if kind is list:
        return [plain(v) for v in value]
    if kind is tuple:
        return {"t": [plain(v) for v in value]}
    if kind is dict:
        return {"d": [[plain(k), plain(v)] for k, v in value.items()]}
    if kind in (set, frozenset):
        return {"s" if kind is set else "fs": [plain(v) for v in value]}
    if kind is complex:
        return {"c": [repr(value.real), repr(value.imag)]}
    if kind is bytes:
        return {"b": value.hex()}
    raise TypeError("returned a %s, which the tests cannot compare" % kind.__name__)

def describe(exc):
    return ("%s: %s" % (type(exc).__name__, exc))[:300]

request = recv()
module = types.ModuleType(request["module"])
sys.modules[request["module"]] = module
try:
    exec(compile(request["context"], "<context>", "exec"), module.__dict__)
    exec(compile(request["code"], "<submission>", "exec"), module.__dict__)
    entry = request["entry"]
    function = module.__dict__.get(entry) if entry else None
    if not callable(function) and entry and isinstance(module.__dict__.get("Solution"), type):
        function = getattr(module.__dict__["Solution"](), entry, None)  # LeetCode style
    if entry and not callable(function):
        raise NameError("the code defines no function named %s" % entry)
except BaseException as exc:
    send({"load_error": describe(exc)})
    os._exit(0)
send({"ready": True})
while True:
    args, kwargs = recv()
    try:
        send({"value": plain(function(*args, **kwargs))})
    except BaseException as exc:
        try:
            send({"raise": [type(exc).__name__, describe(exc)]})
        except BaseException:
            os._exit(1)
'''

# The judge (stdlib only, Python >= 3.8). __SPEC__ becomes a string literal.
_HARNESS = r'''
from __future__ import annotations
import os, sys


def user_writable(path):
    """Whether code of this uid could put a module at ``path``: the path, or the nearest part
    of it that exists, is writable (a read-only mount says no, even to root)."""
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.access(path, os.W_OK)


# Before any other import: an earlier submission may have left modules wherever user code can
# write (the work dir, /tmp, HOME's user site), and every name imported below would find them.
sys.path[:] = [p for p in sys.path if os.path.isabs(p) and not user_writable(p)]
from typing import Any
import builtins, ctypes, json, math, os, pickle, resource, select, shutil, signal, struct, subprocess, sys, tempfile, time, types

libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: the worker cannot read this process's memory or fds
spec = json.loads(__SPEC__)
nonce = spec.pop("nonce")
verdict_fd = os.dup(1)
null = os.open(os.devnull, os.O_RDWR)
os.dup2(null, 1)
sys.stdout = open(os.devnull, "w")
start = time.monotonic()
deadline = start + spec["total_limit"]
MODULE = "__agentgym_context__"
LOAD_ALLOWANCE = 2.0  # seconds a worker may take to start, beyond the code's own test limit
results, reasons = [], []


def restrict():
    """In the worker before exec: no capabilities (not even as a user namespace's root), and
    the first to go when memory runs out."""
    libc.prctl(8, 0x2F, 0, 0, 0)  # PR_SET_SECUREBITS: NOROOT (+locked), NO_SETUID_FIXUP (+locked)
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    libc.capset(header, data)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))  # a program's output file stays bounded
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    os.setsid()


def python_cmd():
    """A fresh interpreter that skips ``site`` (a third of its start-up) but gets its import path."""
    paths = [p for p in sys.path if p]
    return [sys.executable or "python3", "-I", "-S", "-c", "import sys; sys.path[:] = %r\n" % paths]


class Worker:
    """The submission, loaded in its own process; calls go over pipes."""

    def __init__(self, limit):
        command = python_cmd()
        command[-1] += spec["worker"]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=restrict,
                                     close_fds=True, cwd=workdir)
        self.buffer = b""
        os.set_blocking(self.proc.stdin.fileno(), False)
        until = time.monotonic() + limit
        try:
            self.send({"module": MODULE, "context": spec["context"], "code": spec["code"], "entry": spec["entry"]},
                      until)
            reply = self.receive(until)
        except TimeoutError:
            raise TimeoutError("loading the code took longer than %g s" % limit)
        if "load_error" in reply:
            raise LoadError(reply["load_error"])

    def send(self, obj, until):
        """Write a request; a worker that stops reading fails the test when the time is up."""
        data = memoryview(struct.pack(">I", len(body := pickle.dumps(obj, protocol=4))) + body)
        fd = self.proc.stdin.fileno()
        while data:
            left = min(until, deadline) - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                self.kill()
                raise TimeoutError("timed out after %g s" % spec["test_limit"])
            try:
                data = data[os.write(fd, data[:1 << 16]):]
            except OSError:
                return  # the worker died: receive() says so

    def receive(self, until):
        fd = self.proc.stdout.fileno()
        while True:
            if len(self.buffer) >= 4:
                size = struct.unpack(">I", self.buffer[:4])[0]
                if size > 64 << 20:
                    self.kill()
                    raise RuntimeError("the function returned more than 64 MiB")
                if len(self.buffer) >= 4 + size:
                    body, self.buffer = self.buffer[4:4 + size], self.buffer[4 + size:]
                    try:
                        reply = json.loads(body)
                    except ValueError:
                        raise RuntimeError("the process sent a garbled reply")
                    if type(reply) is not dict:
                        raise RuntimeError("the process sent a garbled reply")
                    return reply
            left = min(until, deadline) - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.kill()
                raise TimeoutError("timed out after %g s" % spec["test_limit"])
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                self.kill()
                raise RuntimeError("the process exited (exit code %s)" % self.proc.wait())
            self.buffer += chunk

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.kill()
        self.proc.wait()


class LoadError(Exception):
    pass


class Failed(Exception):
    """A test failure whose message is the whole reason (e.g. a program's last stderr line)."""


def rebuild(value):
    """A plain value from the worker's JSON, with exact built-in types only."""
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind is list:
        return [rebuild(v) for v in value]
    if kind is dict and len(value) == 1:
        (tag, body), = value.items()
        if tag == "f" and body in ("inf", "-inf", "nan"):
            return float(body)
        if tag == "t" and type(body) is list:
            return tuple(rebuild(v) for v in body)
        if tag == "d" and type(body) is list:
            return {rebuild(k): rebuild(v) for k, v in body}
        if tag == "s" and type(body) is list:
            return {rebuild(v) for v in body}
        if tag == "fs" and type(body) is list:
            return frozenset(rebuild(v) for v in body)
        if tag == "c" and type(body) is list and len(body) == 2:
            return complex(float(body[0]), float(body[1]))
        if tag == "b" and type(body) is str:
            return bytes.fromhex(body)
    raise RuntimeError("the process sent a garbled reply")


worker = None
test_until = 0.0


def get_worker():
    """The live worker, (re)started if needed; the first one's failure to load is the code's
    load error. Starting and loading have their own time limit, so the test that triggered
    them still gets all of its own."""
    global worker, test_until, deadline
    if worker is not None and worker.proc.poll() is None:
        return worker
    first, began = worker is None, time.monotonic()
    try:
        worker = Worker(spec["test_limit"] + LOAD_ALLOWANCE)
    except LoadError:
        raise
    except BaseException as exc:
        if first:
            raise LoadError(describe(exc))
        raise
    if first:  # the total limit is for the tests: the first start does not count
        deadline += time.monotonic() - began
    test_until = min(time.monotonic() + spec["test_limit"], deadline)
    return worker


def candidate(*args, **kwargs):
    """The submitted function, as the tests see it."""
    try:
        pickle.dumps((args, kwargs), protocol=4)
    except Exception as exc:
        raise TypeError("the test's arguments cannot be sent to the function: %s" % exc)
    w = get_worker()
    w.send((args, kwargs), test_until)
    reply = w.receive(test_until)
    if "value" in reply:
        return rebuild(reply["value"])
    if "raise" in reply and type(reply["raise"]) is list and len(reply["raise"]) == 2:
        name, text = str(reply["raise"][0]), str(reply["raise"][1])[:300]
        kind = getattr(builtins, name, None)
        if isinstance(kind, type) and issubclass(kind, Exception) and kind is not AssertionError:
            try:
                raise kind(text.partition(": ")[2])
            except TypeError:
                pass
        raise RuntimeError(text)
    raise RuntimeError("the process sent a garbled reply")


def describe(exc):
    if isinstance(exc, Failed):
        return str(exc)[:300]
    return ("%s: %s" % (type(exc).__name__, exc))[:300]


def run_program(case_input):
    """One stdin/stdout case: a fresh process, its stdout captured to a file (capped)."""
    with open(os.path.join(workdir, "stdin.txt"), "w") as f:
        f.write(case_input)
    out_path = os.path.join(workdir, "stdout.txt")
    boot = ("import sys\nsys.argv = ['solution.py']\nsource = open(sys.argv[0]).read()\n"
            "exec(compile(source, 'solution.py', 'exec'), {'__name__': '__main__', '__builtins__': __builtins__})")
    err_path = os.path.join(workdir, "stderr.txt")
    with open(os.path.join(workdir, "stdin.txt")) as stdin, open(out_path, "w") as stdout, open(err_path, "w") as err:
        command = python_cmd()
        command[-1] += boot
        proc = subprocess.Popen(command, stdin=stdin, stdout=stdout,
                                stderr=err, preexec_fn=restrict, close_fds=True, cwd=workdir)
        try:
            code = proc.wait(max(min(test_until, deadline) - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.kill()
            proc.wait()
            raise TimeoutError("timed out after %g s" % spec["test_limit"])
    with open(out_path, "rb") as f:
        output = f.read(16 << 20).decode("utf-8", "replace")
    if code < 0:
        raise RuntimeError("the program was killed by signal %d" % -code)
    return output, code, err_path


def last_error_line(path):
    with open(path, "rb") as f:
        f.seek(max(os.fstat(f.fileno()).st_size - 4096, 0))
        lines = [line for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


__SHARED__


def check_statements(source):
    """Compile assert-style cases up front; a case that does not compile fails alone."""
    compiled = []
    for text in source:
        try:
            compiled.append(compile(text, "<test>", "exec"))
        except SyntaxError as exc:
            compiled.append(exc)
    return compiled


workdir = tempfile.mkdtemp(prefix="judge-", dir=os.getcwd())
os.chmod(workdir, 0o755)
load_error = None
setup_error = "not run: the judge stopped"
cases = spec["cases"]
try:
    namespace = None
    if spec["kind"] == "assert":
        module = types.ModuleType(MODULE)
        sys.modules[MODULE] = module
        exec(compile(spec["context"], "<context>", "exec"), module.__dict__)
        namespace = dict(module.__dict__)
        exec(compile(spec["setup"], "<test setup>", "exec"), namespace)
        namespace["candidate"] = candidate
        if spec["entry"]:
            namespace[spec["entry"]] = candidate
        statements = check_statements(cases)
    elif spec["kind"] == "stdio":
        with open(os.path.join(workdir, "solution.py"), "w") as f:
            f.write(spec["code"])
    else:
        sys.modules[MODULE] = types.ModuleType(MODULE)
    for index, case in enumerate(cases):
        now = time.monotonic()
        if now >= deadline:
            results.append(False)
            reasons.append("not run: the time limit for all tests (%g s) ran out" % spec["total_limit"])
            continue
        test_until = min(now + spec["test_limit"], deadline)
        try:
            if spec["kind"] == "assert":
                if isinstance(statements[index], SyntaxError):
                    raise RuntimeError("the test itself does not compile: %s" % statements[index])
                exec(statements[index], namespace)
            elif spec["kind"] == "call":
                args, want = case
                got = candidate(*args)
                ok = same_value(got, want, spec["tol"])
                if not ok and spec["unwrap"] and type(want) is list and len(want) == 1:
                    ok = same_value(got, want[0], spec["tol"])
                if not ok:
                    raise AssertionError
            else:
                output, code, err_path = run_program(case[0])
                if not outputs_match(output, case[1], spec["tol"]):
                    error = last_error_line(err_path) if code else ""
                    raise Failed(error) if error else AssertionError
            results.append(True)
            reasons.append("")
        except LoadError as exc:
            load_error = str(exc)
            results = [False] * len(cases)
            reasons = ["the code failed to load"] * len(cases)
            break
        except BaseException as exc:
            results.append(False)
            if isinstance(exc, AssertionError):
                reasons.append({"assert": "assertion failed", "call": "wrong answer", "stdio": "wrong output"}[spec["kind"]])
            else:
                reasons.append(describe(exc))
except BaseException as exc:  # the dataset's own setup code failed: every test fails, saying so
    setup_error = "the tests could not be set up: %s" % describe(exc)
finally:
    if worker is not None:
        worker.kill()
    shutil.rmtree(workdir, ignore_errors=True)
    while len(results) < len(cases):
        results.append(False)
        reasons.append(setup_error)
    report = {"results": results, "reasons": reasons, "load_error": load_error}
    os.write(verdict_fd, (spec["mark"] + nonce + " " + json.dumps(report) + "\n").encode())
os._exit(0)
'''
