//! `python -m jester ...`: the `jester` command line in this process (the same Rust code as the
//! binary), and under torchrun one rank of a data-parallel `train` or `embed`, whose collectives
//! are `torch.distributed`'s own (gloo or NCCL), called on the very tensors the step uses.
use pyo3::prelude::*;
use pyo3_tch::PyTensor;
use tch::{Device, Tensor};

use jester::collective::{Distributed, ProcessGroup};

use crate::checks::parse_device;

/// The Python object of `jester/__main__.py` (`_TorchOps`) that runs each primitive through
/// `torch.distributed`.
struct TorchGroup {
    ops: Py<PyAny>,
    rank: usize,
    world: usize,
    device: Device,
}

impl TorchGroup {
    fn call(
        &self,
        name: &str,
        tensor: &Tensor,
        root: Option<usize>,
    ) -> jester::Result<Option<Tensor>> {
        Python::with_gil(|py| -> PyResult<Option<Tensor>> {
            let t = PyTensor(tensor.shallow_clone());
            let out = match root {
                Some(root) => self.ops.call_method1(py, name, (t, root))?,
                None => self.ops.call_method1(py, name, (t,))?,
            };
            if out.is_none(py) {
                return Ok(None);
            }
            Ok(Some(out.extract::<PyTensor>(py)?.0))
        })
        .map_err(|e| jester::Error::Distributed {
            rank: self.rank,
            what: format!(
                "torch.distributed ({name}) failed, as it does when another rank has stopped \
                 (its own error, if any, is printed by that rank): {e}"
            ),
        })
    }
}

impl ProcessGroup for TorchGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world
    }
    fn device(&self) -> Device {
        self.device
    }
    fn all_gather(&self, tensor: &Tensor) -> jester::Result<Tensor> {
        self.call("all_gather", tensor, None)?
            .ok_or_else(|| jester::Error::Distributed {
                rank: self.rank,
                what: "all_gather returned nothing".into(),
            })
    }
    fn all_reduce_sum(&self, tensor: &Tensor) -> jester::Result<()> {
        self.call("all_reduce_sum", tensor, None).map(drop)
    }
    fn broadcast(&self, tensor: &Tensor, root: usize) -> jester::Result<()> {
        self.call("broadcast", tensor, Some(root)).map(drop)
    }
    fn barrier(&self) -> jester::Result<()> {
        Python::with_gil(|py| self.ops.call_method0(py, "barrier").map(drop)).map_err(|e| {
            jester::Error::Distributed {
                rank: self.rank,
                what: format!("torch.distributed (barrier) failed: {e}"),
            }
        })
    }
}

/// Runs `argv` (without the program name) as the `jester` command line with the GIL released;
/// with `ops` (a `_TorchOps`), as rank `rank` of `world` whose collective buffers live on
/// `device`. Returns the exit status.
#[pyfunction]
#[pyo3(signature = (argv, ops = None, rank = 0, world = 1, local_rank = 0, device = "cpu"))]
pub(crate) fn cli(
    py: Python<'_>,
    argv: Vec<String>,
    ops: Option<Py<PyAny>>,
    rank: usize,
    world: usize,
    local_rank: usize,
    device: &str,
) -> PyResult<u8> {
    let device = parse_device(device)?;
    let args: Vec<std::ffi::OsString> = std::iter::once("jester".into())
        .chain(argv.into_iter().map(Into::into))
        .collect();
    Ok(py.allow_threads(move || {
        let processes = ops.map(|ops| jester_cli::Processes {
            collective: Box::new(Distributed::new(TorchGroup {
                ops,
                rank,
                world,
                device,
            })),
            local_rank,
        });
        jester_cli::run(args, processes)
    }))
}
