"""Shared helpers for the `jester` Python package tests: seeded embeddings, safetensors files,
the `jester` CLI runner and small process-memory and device probes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[3]
# The debug CLI built by `cargo build`; JESTER_CLI points the tests at another build.
CLI = Path(os.environ.get("JESTER_CLI", REPO / "target" / "debug" / "jester"))


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """`x` with every row scaled to unit L2 norm."""
    return torch.nn.functional.normalize(x, dim=1)


def random_pair(
    seed: int, n: int, d: int, *, normalised: bool = True, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded image and text embeddings `[n, d]`, of unit rows when `normalised`."""
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(n, d, generator=g, dtype=dtype)
    text = torch.randn(n, d, generator=g, dtype=dtype)
    # Make the positive pairs correlated, as a trained model's are.
    text = 0.5 * text + image
    if normalised:
        image, text = unit_rows(image), unit_rows(text)
    return image, text


def write_safetensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> Path:
    """Writes `tensors` (and string `metadata`) as a safetensors file, with the `safetensors`
    package (pinned in scripts/build-python)."""
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path), metadata)
    return path


def write_embeddings(
    path: Path, image: torch.Tensor, text: torch.Tensor, t: float, b: float
) -> Path:
    """One model's embeddings in the layout `jester select` reads (scalars of shape [])."""
    return write_safetensors(
        path,
        {"image": image, "text": text, "t": torch.tensor(t), "b": torch.tensor(b)},
    )


def cli_env() -> dict[str, str]:
    """The environment scripts/with-torch gives the binaries: this interpreter's libtorch on the
    library path (running the script itself costs seconds per call in interpreter start-ups)."""
    torch_lib = str(Path(torch.__file__).parent / "lib")
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in [torch_lib, env.get("LD_LIBRARY_PATH", "")] if p
    )
    env["LIBTORCH_USE_PYTORCH"] = "1"
    env.setdefault("RUST_LOG", "warn")
    return env


def require_cli() -> Path:
    if not CLI.is_file():
        pytest.skip(
            f"jester CLI binary not found at {CLI}: build it with "
            "`scripts/with-torch cargo build -p jester-cli` (or set JESTER_CLI)"
        )
    return CLI


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs `jester ARGS...`; fails the test with the CLI's stderr when it exits non-zero."""
    cli = require_cli()
    done = subprocess.run(
        [str(cli), *args],
        check=False,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        pytest.fail(f"jester {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done


def has_cuda() -> bool:
    return torch.cuda.is_available() and torch.cuda.device_count() > 0


def require_cuda(what: str) -> None:
    if not has_cuda():
        pytest.skip(f"no CUDA device: {what} needs one")


def proc_status_bytes(field: str) -> int:
    """A `/proc/self/status` memory field (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Resets VmHWM to the current RSS (Linux ≥ 4.0); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def no_panic(call) -> None:
    """Runs `call`: an ordinary error is fine, a Rust panic (`pyo3_runtime.PanicException`, a
    BaseException, not an Exception) fails the test."""
    try:
        call()
    except (ValueError, TypeError, RuntimeError, OSError):
        pass
    except BaseException as e:  # noqa: BLE001 - PanicException derives from BaseException
        pytest.fail(f"panicked: {type(e).__name__}: {str(e)[:200]}")
