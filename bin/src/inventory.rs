//! The node inventory's options, shared by the server (its own node) and `imagegate-worker` (each node of a
//! fleet).

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use image_core::{inventory::IgnoreList, store::InventoryStore};
use node_inventory::CriRuntime;
use sync_worker::NodeReporter;

/// Which container runtime this process reads, under which node name.
#[derive(Debug, Clone, clap::Args)]
pub struct InventoryArgs {
    /// The node's CRI socket. Unset: containerd's, when it exists.
    #[arg(long, env = "IMAGEGATE_CRI_ENDPOINT", value_name = "unix:///PATH")]
    pub cri_endpoint: Option<String>,
    /// The node's name in the inventory (in Kubernetes, the downward API's `spec.nodeName`); default the
    /// host name.
    #[arg(long, env = "IMAGEGATE_NODE_NAME")]
    pub node_name: Option<String>,
    /// How often the node's images are recorded: `60s`, `5m`; a node silent for three intervals is stale.
    #[arg(long, env = "IMAGEGATE_INVENTORY_INTERVAL", default_value = "60s", value_parser = crate::parse_token_ttl)]
    pub inventory_interval: Duration,
    /// A CSV of image ids (`IMAGE ID` as crictl prints them) left out of the node's images.
    #[arg(long, env = "IMAGEGATE_IMAGES_TO_IGNORE", value_name = "FILE")]
    pub images_to_ignore: Option<PathBuf>,
    /// Read no container runtime, even when containerd's socket exists.
    #[arg(long, env = "IMAGEGATE_NO_INVENTORY")]
    pub no_inventory: bool,
}

/// This node, as the options name it: its name, runtime and ignore list.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub runtime: Arc<CriRuntime>,
    pub ignore: IgnoreList,
    pub interval: Duration,
}

impl InventoryArgs {
    /// `None` when this process reads no runtime: `--no-inventory`, or no `--cri-endpoint` and no socket at
    /// containerd's default path. A malformed endpoint, or an ignore list that is missing or malformed, is an
    /// error.
    pub fn node(&self) -> anyhow::Result<Option<Node>> {
        let ignore = match &self.images_to_ignore {
            Some(path) => node_inventory::load_ignore_list(path).map_err(anyhow::Error::msg)?,
            None => IgnoreList::default(),
        };
        if self.no_inventory {
            return Ok(None);
        }
        let runtime = match &self.cri_endpoint {
            Some(endpoint) => CriRuntime::new(endpoint).map_err(anyhow::Error::msg)?,
            None => {
                let runtime = CriRuntime::new(node_inventory::DEFAULT_ENDPOINT).map_err(anyhow::Error::msg)?;
                if !runtime.socket().exists() {
                    return Ok(None);
                }
                runtime
            }
        };
        let name = match &self.node_name {
            Some(name) => name.trim().to_owned(),
            None => host_name().context("cannot read the host name; give --node-name")?,
        };
        if name.is_empty() || name.len() > 253 || name.chars().any(|c| c.is_control() || c == ':' || c == '/') {
            bail!("--node-name {name:?}: expected a node name such as worker-1 (no `:`, `/` or spaces at the ends)");
        }
        Ok(Some(Node { name, runtime: Arc::new(runtime), ignore, interval: self.inventory_interval }))
    }
}

impl Node {
    /// What the worker's inventory job reports with.
    pub fn reporter(&self, store: Arc<dyn InventoryStore>) -> Arc<NodeReporter> {
        Arc::new(NodeReporter {
            node: self.name.clone(),
            runtime: self.runtime.clone(),
            store,
            interval: self.interval,
            ignore: self.ignore.clone(),
        })
    }

    /// What `GET /images` reads this node with.
    pub fn local(&self) -> api_http::profile::inventory::LocalNode {
        api_http::profile::inventory::LocalNode {
            name: self.name.clone(),
            runtime: self.runtime.clone(),
            ignore: self.ignore.clone(),
        }
    }
}

fn host_name() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .context("no /proc/sys/kernel/hostname or /etc/hostname")?;
    Ok(name.trim().to_owned())
}
