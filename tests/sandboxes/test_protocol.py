"""The Sandbox protocol on both backends: results, session, files, async twins, typed errors."""

from __future__ import annotations

import asyncio

import pytest

from agentgym.core import InfraError
from agentgym.sandboxes import AsyncSandbox, BaseSandbox, Sandbox, SandboxTimeout, SandboxUnavailable


def test_results_and_exit_codes(box: BaseSandbox) -> None:
    assert isinstance(box, Sandbox) and isinstance(box, AsyncSandbox)
    ok = box.run_python("print('hi')")
    assert (ok.stdout, ok.stderr, ok.exit_code, ok.timed_out, ok.truncated) == ("hi\n", "", 0, False, False)
    err = box.run_python("x = 1\n1 / 0")
    assert err.exit_code == 1 and "ZeroDivisionError" in err.stderr and 'line 2' in err.stderr
    assert box.run_python("raise SystemExit(3)").exit_code == 3
    assert box.run_shell("echo out; echo err >&2; exit 7").__dict__ | {"duration": 0} == {
        "stdout": "out\n", "stderr": "err\n", "exit_code": 7, "timed_out": False, "stdout_truncated": False,
        "stderr_truncated": False, "duration": 0, "error": ""}
    assert box.run_shell("kill -9 $$").exit_code == -9


def test_calls_are_isolated_but_the_session_persists(box: BaseSandbox) -> None:
    box.run_python("leak = 1")
    assert box.run_python("print(leak)").exit_code == 1
    box.run_python("import math\nacc = [math.pi]", session=True)
    assert box.run_python("acc.append(2)\nprint(len(acc))", session=True).stdout == "2\n"
    err = box.run_python("undefined_name", session=True)
    assert err.exit_code == 1 and "NameError" in err.stderr
    assert box.run_python("print(len(acc))", session=True).stdout == "2\n"  # an error keeps the state
    slow = box.run_python("while True: pass", session=True, timeout=0.5)
    assert slow.timed_out and "variables are lost" in slow.stderr
    assert "NameError" in box.run_python("acc", session=True).stderr
    box.run_python("y = 5", session=True)
    box.reset_session()
    assert box.run_python("y", session=True).exit_code == 1


def test_files_roundtrip(box: BaseSandbox) -> None:
    payload = bytes(range(256)) * 1000
    box.write_file("data/blob.bin", payload)
    assert box.read_file("data/blob.bin") == payload
    assert box.run_python("print(len(open('data/blob.bin','rb').read()))").stdout == "256000\n"
    box.run_shell("echo made-by-code > out.txt")
    assert box.read_file(f"{box.workdir}/out.txt") == b"made-by-code\n"
    with pytest.raises(FileNotFoundError):
        box.read_file("missing.txt")


def test_async_twins(box: BaseSandbox) -> None:
    async def main() -> None:
        result = await box.arun_python("print(2 + 2)")
        assert result.stdout == "4\n"
        await box.awrite_file("a.txt", "async")
        assert await box.aread_file("a.txt") == b"async"
        await box.arun_python("v = 9", session=True)
        assert (await box.arun_python("print(v)", session=True)).stdout == "9\n"
        shell = await box.arun_shell("echo $((3 * 3))")
        assert shell.stdout == "9\n"
        # one sandbox, concurrent callers: they queue, none is lost
        results = await asyncio.gather(*(box.arun_python(f"print({i})") for i in range(5)))
        assert [r.stdout for r in results] == [f"{i}\n" for i in range(5)]
        await box.aclose()

    asyncio.run(main())
    with pytest.raises(SandboxUnavailable):
        box.run_python("1")


def test_errors_are_infra_errors() -> None:
    assert issubclass(SandboxTimeout, InfraError) and issubclass(SandboxUnavailable, InfraError)


@pytest.mark.docker
def test_stuck_executor_raises_sandbox_timeout(sandbox_image, docker_client, test_labels) -> None:  # noqa: ANN001
    from agentgym.sandboxes.docker_sandbox import DockerSandbox

    with DockerSandbox(labels=test_labels) as box:
        box.grace = 1.0
        docker_client.api.pause(box.container_id)  # a real hang: the executor is frozen
        try:
            with pytest.raises(SandboxTimeout):
                box.run_python("print(1)", timeout=0.5)
        finally:
            docker_client.api.unpause(box.container_id)


@pytest.mark.docker
def test_missing_image_is_unavailable(docker_client) -> None:  # noqa: ANN001
    from agentgym.sandboxes import SandboxSpec
    from agentgym.sandboxes.docker_sandbox import DockerSandbox

    with pytest.raises(SandboxUnavailable, match="not present"):
        DockerSandbox(SandboxSpec(image="agentgym/no-such-image:0"))


@pytest.mark.docker
@pytest.mark.parametrize("direct", [True, False])
def test_both_docker_links_carry_the_protocol(sandbox_image, docker_client, test_labels, direct: bool) -> None:  # noqa: ANN001
    """A local engine gets a bind-mounted unix socket (bytes bypass dockerd), any engine the
    attach stream: the same calls, results and crash detection over each; the socket is gone
    before user code runs, so the code cannot reach the host's end."""
    from agentgym.sandboxes import SandboxCrashed
    from agentgym.sandboxes.docker_sandbox import DockerSandbox

    with DockerSandbox(labels=test_labels, direct=direct) as box:
        assert box.direct is direct
        big = box.run_python("import sys\nsys.stdout.write('z' * (300 << 10))\nprint('e', file=sys.stderr)")
        assert big.stdout == "z" * (300 << 10) and big.stderr == "e\n"
        link = box.run_shell("ls -A /agentgym; test -e /agentgym/executor.sock")
        if direct:  # mounted (private to the executor's uid where that is ours), the socket already removed
            assert link.exit_code == 1 and link.stdout == "", link
        else:
            assert not link.ok  # no such mount
        docker_client.api.kill(box.container_id)
        with pytest.raises(SandboxCrashed):
            box.run_python("print(1)")
