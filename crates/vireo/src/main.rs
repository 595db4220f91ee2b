//! `vireo serve` runs the engine; `vireo agent` runs a host agent.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "vireo",
    version,
    about = "An oVirt-compatible virtualization manager"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine: the oVirt REST API v4 over HTTPS.
    Serve {
        /// Where the database, the certificate authority and the admin password live.
        #[arg(long, default_value = "./vireo-data")]
        data_dir: PathBuf,
        /// Address and port to listen on.
        #[arg(long, default_value = "0.0.0.0:8443")]
        listen: String,
        /// `postgres://…` to use PostgreSQL; SQLite in the data folder by default.
        #[arg(long)]
        database: Option<String>,
        /// More names (DNS or IP) the server certificate must cover.
        #[arg(long = "tls-name")]
        tls_names: Vec<String>,
    },
    /// Run a host agent (the part VDSM plays for oVirt).
    Agent {
        /// Where the host's identity (keys, enrollment) lives; with --hosts N, one folder
        /// `host-<i>` per host inside it.
        #[arg(long, default_value = "./vireo-agent-data")]
        data_dir: PathBuf,
        /// Address and port to listen on; with --hosts N, host i listens on PORT+i.
        #[arg(long, default_value = "0.0.0.0:54321")]
        listen: String,
        /// The secret the engine must present to enroll this host (its `root_password`).
        #[arg(long, env = "VIREO_ENROLL_SECRET", hide_env_values = true)]
        enroll_secret: String,
        /// Simulate the hypervisor: VMs are state machines, no QEMU.
        #[arg(long)]
        simulate: bool,
        /// How many hosts this process poses as (each its own port and identity).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        hosts: u32,
        /// How guests run: kvm, tcg, or auto (KVM only when a probe guest really runs under it).
        #[arg(long, default_value = "auto")]
        accel: vireo_agent::AccelChoice,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIREO_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve {
            data_dir,
            listen,
            database,
            tls_names,
        } => runtime.block_on(vireo_engine::serve(vireo_engine::ServeConfig {
            data_dir,
            listen,
            database,
            tls_names,
            admin_password: std::env::var("VIREO_ADMIN_PASSWORD").ok(),
        })),
        Command::Agent {
            data_dir,
            listen,
            enroll_secret,
            simulate,
            hosts,
            accel,
        } => runtime.block_on(vireo_agent::run(vireo_agent::AgentConfig {
            data_dir,
            listen,
            enroll_secret,
            simulate,
            hosts: hosts as usize,
            accel,
        })),
    }
}
