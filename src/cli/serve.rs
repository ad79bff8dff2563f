//! `twinhead serve`: the headless server of a GPU machine (docs/remote.md);
//! `twinhead runs pull`: a run folder copied from one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::progress_bar;
use crate::serve::api::DEFAULT_PORT;
use crate::serve::client::Client;
use crate::serve::guard::Token;
use crate::serve::server::{self, Options};
use crate::train::parallel::Placement;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. Another than loopback needs --token-file, and --tls-cert/--tls-key or --allow-plain-http.
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
    listen: SocketAddr,
    /// The runs folder the server owns (it lists, trains and follows the runs in it).
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// A file whose first line is the token every request must send (`Authorization: Bearer TOKEN`).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// A folder dataset and weight paths in requests may name (repeat for more); default: the working folder.
    #[arg(long = "datasets", value_name = "DIR")]
    datasets: Vec<PathBuf>,
    /// The server's certificate chain (PEM), for HTTPS.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (only on a network you trust: the token crosses it in clear).
    #[arg(long)]
    allow_plain_http: bool,
    /// The devices runs train on unless a request names others: cpu, cuda:0, or a list cuda:0,cuda:1.
    #[arg(long, default_value = "cpu")]
    devices: String,
}

pub fn run_serve(args: ServeArgs) -> Result<ExitCode> {
    let options = Options {
        listen: args.listen,
        token: args.token_file.as_deref().map(Token::read).transpose()?,
        runs: args.runs,
        datasets: args.datasets,
        tls: args.tls_cert.zip(args.tls_key),
        allow_plain_http: args.allow_plain_http,
        devices: Placement::parse_devices(&args.devices)?,
    };
    server::serve(options)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// The server: http://HOST:PORT or https://HOST:PORT (through an SSH tunnel: http://127.0.0.1:7878).
    #[arg(long)]
    server: String,
    /// The file holding the server's token.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The server's certificate (or its CA's), when it is not one the web trusts.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// The run's name on the server.
    name: String,
    /// Where the run folder goes [default: runs/NAME].
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run_pull(args: PullArgs) -> Result<ExitCode> {
    if !crate::serve::api::valid_run_name(&args.name) {
        anyhow::bail!("{:?}: not a run name", args.name);
    }
    let client = Client::with_token_file(&args.server, args.token_file.as_deref(), args.ca_file.as_deref())?;
    client.info()?;
    let out = args.out.unwrap_or_else(|| PathBuf::from("runs").join(&args.name));
    let bar = progress_bar(Some(0), "pulling");
    let copied = client.pull(&args.name, &out, None, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    println!("{} file(s) copied into {} (the others were there already)", copied?, out.display());
    Ok(ExitCode::SUCCESS)
}
