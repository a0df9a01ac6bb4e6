//! `sandbox`: a local NXLink stand-in until SIGINT or SIGTERM, then what it
//! saw.

use crate::cli::SandboxArgs;
use crate::error::{Error, Exit};
use crate::nxlink::Credentials;
use crate::output::Output;
use crate::sandbox::Sandbox;

pub async fn run(args: SandboxArgs, output: &Output) -> Result<Exit, Error> {
    let key = args.access_key.clone();
    let credentials = Credentials::new(args.access_key, args.access_secret);
    let sandbox = Sandbox::start(args.listen, credentials, args.faults.into())
        .await
        .map_err(Error::Listen)?;
    let stop = crate::run::shutdown_signal();
    output.note(format_args!(
        "sandbox: NXLink stand-in on {} (access key {key:?}); stats at {}/_sandbox/stats; Ctrl-C stops it",
        sandbox.base_url(),
        sandbox.base_url()
    ));
    stop.await;
    let stats = sandbox.stats();
    sandbox.stop().await;
    output.result(format_args!(
        "{}",
        serde_json::to_string_pretty(&stats).unwrap_or_default()
    ))?;
    Ok(Exit::Done)
}
