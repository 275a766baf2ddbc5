//! Imports an image into imagegate's internal registry and waits until it is there:
//! `cargo run -p api-client --example import_and_wait -- SERVER USER PASSWORD SOURCE`.

use std::time::Duration;

use api_client::{Client, ImportRequest};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [server, user, password, source] = args.as_slice() else {
        anyhow::bail!("usage: import_and_wait SERVER USER PASSWORD SOURCE");
    };
    let client = Client::new(server)?;
    let token = client.sign_in(user, password).await?;
    let client = client.with_token(token.token.clone());

    let answer = client.import(&ImportRequest { source: source.clone(), ..Default::default() }).await?;
    println!("{} (import {})", answer.message, answer.id());

    let done = client
        .wait_for_import(answer.id(), Duration::from_millis(500), |d| {
            let (completed, layers) = d.layers_completed();
            println!("{}: {completed}/{layers} layers", d.status);
        })
        .await?;
    anyhow::ensure!(done.is_ready(), "import failed: {}", done.message.as_deref().unwrap_or("no reason given"));
    client.revoke_token().await?;
    Ok(())
}
