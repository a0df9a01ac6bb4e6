//! `webhook`: receives calls until SIGINT or SIGTERM, then lets the
//! deliveries in progress be stored.

use crate::cli::WebhookArgs;
use crate::error::{Error, Exit};
use crate::ledger::{Ledger, OpenMode};
use crate::output::Output;
use crate::settings::Settings;
use crate::webhook::{Receiver, CALLS_PATH, REQUEST_TIMEOUT};

pub async fn run(settings: &Settings, args: WebhookArgs, output: &Output) -> Result<Exit, Error> {
    // Fails closed: a token variable unset or empty is refused; only
    // --no-token runs without one.
    let token = settings.webhook_token(args.token_env.as_deref(), args.no_token)?;
    let job = args
        .job
        .as_deref()
        .map(|path| settings.job(path))
        .transpose()?;
    let ledger = Ledger::open_with(&settings.ledger(job.as_ref()), OpenMode::MustExist).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Error::argument(format!("--listen {}", args.listen), e.to_string()))?;
    let receiver = Receiver::start(
        listener,
        ledger.clone(),
        crate::webhook::Settings {
            token: token.clone(),
            request_timeout: args.request_timeout.unwrap_or(REQUEST_TIMEOUT),
        },
    )
    .map_err(Error::Listen)?;
    let stop = crate::run::shutdown_signal();
    if token.is_none() {
        output.warn(
            "webhook: --no-token: calls are taken from anyone who can reach this address; keep it behind a proxy that authenticates the vendor"
        );
    }
    output.note(format_args!(
        "webhook: receiving calls at http://{}{CALLS_PATH} into {}; Ctrl-C stops it",
        receiver.addr(),
        ledger.shown()
    ));
    stop.await;
    output.note("webhook: stopping; deliveries in progress are stored first");
    receiver.stop().await;
    ledger.close().await;
    Ok(Exit::Done)
}
