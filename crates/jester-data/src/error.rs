use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {why}")]
    Config { what: &'static str, why: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file a user gave that cannot be used; `why` says what is wrong and how to fix it.
    #[error("{}: {why}", path.display())]
    Input { path: PathBuf, why: String },
    /// The loader's work function panicked on a sample (a bug, not bad data).
    #[error("the loader's work panicked on sample {key:?}; see the panic message above")]
    WorkerPanicked { key: String },
    /// A shard spec (file, folder, glob, brace range) that names nothing usable.
    #[error("shards {spec:?}: {why}")]
    Shards { spec: String, why: String },
    /// A file given as a shard that is not a tar archive at all.
    #[error("{}: not a tar shard ({why}); shards must be POSIX tar files, plain or gzip-compressed, as WebDataset/img2dataset write them", path.display())]
    NotATar { path: PathBuf, why: String },
    /// A gzip-compressed shard with no tar inside, or broken before its first member.
    #[error("{}: gzip-compressed, but no tar can be read from it ({why}); check it with `gzip -t FILE` and re-write it if that fails", path.display())]
    BadGzipShard { path: PathBuf, why: String },
    /// A shard compressed with something jester does not read (zstd, bzip2, xz).
    #[error("{}: a {format}-compressed shard; jester reads plain and gzip-compressed tars, so decompress it first (`{command} FILE`) or re-write it with gzip", path.display())]
    CompressedShard {
        path: PathBuf,
        format: &'static str,
        command: &'static str,
    },
    #[error("{}: cannot write safetensors: {why}", path.display())]
    Safetensors { path: PathBuf, why: String },
    /// A data set that must be installed first (docs/DATA.md lists how to get each one).
    #[error("{}: not found; install it with `{install}`", path.display())]
    MissingDataset {
        path: PathBuf,
        install: &'static str,
    },
    /// A data-set file that is there but does not parse.
    #[error("{}: not a usable data-set file ({why})", path.display())]
    BadDataset { path: PathBuf, why: String },
    /// An image that the `image` crate could not encode.
    #[error("cannot encode {what}: {why}")]
    Encode { what: &'static str, why: String },
    /// A file that does not parse as a Hugging Face `tokenizer.json`.
    #[error("{}: not a usable tokenizer.json ({why})", path.display())]
    TokenizerFile { path: PathBuf, why: String },
    /// Training, encoding or serialising failed inside the `tokenizers` crate.
    #[error("tokenizer {op}: {why}")]
    Tokenizer { op: &'static str, why: String },
    /// An image with no pixels, which no crop or resize can turn into `[3, R, R]`.
    #[error("image is {width}x{height}: nothing to preprocess")]
    EmptyImage { width: u32, height: u32 },
}
