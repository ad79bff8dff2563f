//! Where a run trains: one device, several devices of this machine (one
//! replica each), or several machines (nodes) with the same devices each.

use std::net::TcpListener;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use burn_collective::CollectiveConfig;

use super::collective::Rank;
use crate::backend::device::DeviceSpec;

/// The machines of a multi-node run, as this node sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Nodes in the run.
    pub count: usize,
    /// This node: 0 holds the run folder and starts the orchestrator.
    pub rank: usize,
    /// Node 0's `HOST:PORT`: the rendezvous and heartbeats at PORT,
    /// burn-collective's orchestrator at PORT+1, node N's tensor service at PORT+2+N.
    pub coordinator: String,
    /// How long a node may stay silent (or unreachable at the start) before the run ends.
    pub timeout: Duration,
    /// A secret every node knows (`--node-secret-file`): a connection that
    /// cannot prove it is not let in.
    pub secret: Option<Vec<u8>>,
}

impl NodeSpec {
    pub fn new(count: usize, rank: usize, coordinator: &str, timeout: Duration) -> Result<Self> {
        if count < 2 {
            bail!("--nodes {count}: a multi-node run has at least 2 nodes");
        }
        if rank >= count {
            bail!("--node-rank {rank}: must be below --nodes {count}");
        }
        let spec = Self { count, rank, coordinator: coordinator.to_string(), timeout, secret: None };
        spec.port()?;
        Ok(spec)
    }

    /// The coordinator's host and port.
    pub fn host(&self) -> &str {
        self.coordinator.rsplit_once(':').map_or("", |(host, _)| host)
    }

    pub fn port(&self) -> Result<u16> {
        let port = self.coordinator.rsplit_once(':').and_then(|(host, port)| port.parse::<u16>().ok().filter(|_| !host.is_empty()));
        port.filter(|&p| p as usize + 2 + self.count <= u16::MAX as usize)
            .with_context(|| format!("--coordinator {:?}: expected HOST:PORT (node 0's address, a port with {} free above it)", self.coordinator, self.count + 1))
    }
}

/// The devices of a run on this machine, and its nodes when several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub devices: Vec<DeviceSpec>,
    pub nodes: Option<NodeSpec>,
}

impl Placement {
    pub fn single(device: DeviceSpec) -> Self {
        Self { devices: vec![device], nodes: None }
    }

    /// The devices of `--devices LIST` if given, else `--device`'s one (no other nodes).
    pub fn local(device: DeviceSpec, list: Option<&str>) -> Result<Self> {
        let devices = match list {
            Some(list) => Self::parse_devices(list)?,
            None => vec![device],
        };
        Ok(Self { devices, nodes: None })
    }

    /// A comma-separated device list (`cuda:0,cuda:1`, `cpu,cpu`).
    pub fn parse_devices(list: &str) -> Result<Vec<DeviceSpec>> {
        let devices = list.split(',').map(|d| d.trim().parse::<DeviceSpec>()).collect::<Result<Vec<_>>>()?;
        if devices.is_empty() {
            bail!("--devices {list:?}: no device");
        }
        if devices.iter().any(|d| !d.same_kind(devices[0])) {
            bail!("--devices {list}: one run's devices are all of one kind (cpu, cuda or wgpu)");
        }
        let gpus: Vec<&DeviceSpec> = devices.iter().filter(|d| **d != DeviceSpec::Cpu).collect();
        if (1..gpus.len()).any(|i| gpus[..i].contains(&gpus[i])) {
            bail!("--devices {list}: a GPU is listed twice (only cpu may repeat: CPU replicas share the cores)");
        }
        Ok(devices)
    }

    /// Refuses a batch that does not split evenly over the replicas.
    pub fn check_batch(&self, batch_size: usize) -> Result<()> {
        let world = self.world();
        if batch_size % world != 0 {
            bail!("data.batch_size: {batch_size} does not split evenly over {world} replicas (it is the whole step's batch)");
        }
        Ok(())
    }

    /// Whether the run has more than one replica.
    pub fn is_parallel(&self) -> bool {
        self.devices.len() > 1 || self.nodes.is_some()
    }

    /// Replicas in the whole run.
    pub fn world(&self) -> usize {
        self.devices.len() * self.nodes.as_ref().map_or(1, |n| n.count)
    }

    pub fn node_rank(&self) -> usize {
        self.nodes.as_ref().map_or(0, |n| n.rank)
    }

    /// The rank of this machine's `local`-th replica.
    pub fn rank(&self, local: usize) -> Rank {
        let node = self.node_rank();
        Rank { global: node * self.devices.len() + local, world: self.world(), node, local }
    }

    /// burn-collective's configuration on this node; `node_host` is the
    /// address the other nodes reach this one at.
    pub fn collective_config(&self, node_host: &str) -> Result<CollectiveConfig> {
        let config = CollectiveConfig::default().with_num_devices(self.devices.len());
        let Some(nodes) = &self.nodes else {
            return Ok(config);
        };
        let port = nodes.port()?;
        // In range: `port` checked there is room for every node's.
        let data_port = port + 2 + nodes.rank as u16;
        let address = |host: &str, port: u16| format!("ws://{host}:{port}").parse().map_err(|e: String| anyhow::anyhow!(e));
        Ok(config
            .with_num_nodes(nodes.count as u32)
            .with_global_address(address(nodes.host(), port + 1)?)
            .with_node_address(address(node_host, data_port)?)
            .with_data_service_port(data_port))
    }

    /// Refuses to join when a port this node will serve on is taken by another
    /// program (burn-collective would connect to that program and wait forever):
    /// its tensor service's, and node 0's orchestrator's.
    pub fn check_ports(&self) -> Result<()> {
        let Some(nodes) = &self.nodes else { return Ok(()) };
        let port = nodes.port()?;
        check_port_free(port + 2 + nodes.rank as u16, &format!("node {}'s tensor service, PORT+2+{}", nodes.rank, nodes.rank))?;
        if nodes.rank == 0 {
            check_port_free(port + 1, "burn-collective's orchestrator, PORT+1")?;
        }
        Ok(())
    }

    /// How the run's devices are named in its record: `cpu,cpu`, or `2 nodes × cuda:0,cuda:1`.
    pub fn describe(&self) -> String {
        let devices: Vec<String> = self.devices.iter().map(DeviceSpec::to_string).collect();
        match &self.nodes {
            None => devices.join(","),
            Some(nodes) => format!("{} nodes × {}", nodes.count, devices.join(",")),
        }
    }
}

/// Refuses to start when a port this node serves on is taken by another
/// program: burn-collective would connect to that program and wait forever.
pub fn check_port_free(port: u16, what: &str) -> Result<()> {
    TcpListener::bind(("0.0.0.0", port)).map(drop).with_context(|| {
        format!("port {port} ({what}) is in use, by another program or an earlier run: choose another coordinator port")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists_parse_and_ranks_count_across_nodes() {
        assert_eq!(Placement::parse_devices("cpu, cpu").unwrap(), [DeviceSpec::Cpu, DeviceSpec::Cpu]);
        assert_eq!(Placement::parse_devices("cuda:0,cuda:1").unwrap().len(), 2);
        for (bad, says) in [("cpu,cuda:0", "one kind"), ("cuda:1,cuda:1", "twice"), ("cpu,gpu", "gpu")] {
            let error = Placement::parse_devices(bad).unwrap_err().to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
        let nodes = NodeSpec::new(3, 2, "10.0.0.5:29500", Duration::from_secs(5)).unwrap();
        let placement = Placement { devices: vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)], nodes: Some(nodes) };
        assert_eq!(placement.world(), 6);
        assert_eq!(placement.rank(1), Rank { global: 5, world: 6, node: 2, local: 1 });
        assert_eq!(placement.describe(), "3 nodes × cuda:0,cuda:1");
        assert!(placement.collective_config("10.0.0.7").unwrap().is_valid());
        for (count, rank, coordinator) in [(1, 0, "h:1"), (2, 2, "h:1"), (2, 1, "h"), (2, 1, ":80"), (2, 0, "h:65535")] {
            assert!(NodeSpec::new(count, rank, coordinator, Duration::from_secs(1)).is_err(), "{count} {rank} {coordinator}");
        }
    }
}
