//! `iyagi-bench`: the load generator's command line.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use iyagi_bench::scenarios::{self, Context};
use iyagi_bench::setup::Target;

#[derive(Parser)]
#[command(
    name = "iyagi-bench",
    about = "Load generator for iyagi, and a bare relay to compare against"
)]
struct Cli {
    /// host:port of the server under test.
    #[arg(long, global = true, default_value = "127.0.0.1:8080")]
    target: String,
    /// The target is `iyagi-bench relay`, not iyagi (no accounts, no storage).
    #[arg(long, global = true)]
    relay: bool,
    /// The server's process id, for its CPU time and memory (from /proc).
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// No progress line.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// N idle authenticated connections; server memory per connection.
    Idle {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        #[arg(long, default_value_t = 200)]
        users: usize,
        #[arg(long, default_value_t = 20)]
        hold_secs: u64,
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
    },
    /// P pairs in direct rooms; throughput, latency, losses, CPU per message.
    Pairs {
        #[arg(long, default_value_t = 50)]
        pairs: usize,
        #[arg(long, default_value_t = 16)]
        window: usize,
        #[arg(long, default_value_t = 1000)]
        messages: u64,
        /// Open loop at this many messages/s in total (instead of a window).
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = 0)]
        pad: usize,
        /// Receivers register for push (configure the server with a fake FCM).
        #[arg(long)]
        push: bool,
    },
    /// One group of M offline members with FCM registrations; one sender at
    /// a fixed rate; notifications per second, CPU per notification, commit
    /// to provider latency (the server configured with `fake-fcm`).
    Push {
        #[arg(long, default_value_t = 1000)]
        members: usize,
        #[arg(long, default_value_t = 2.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        #[arg(long, default_value = "127.0.0.1:9300")]
        fake_fcm: String,
    },
    /// Run a fake FCM (OAuth token endpoint, `messages:send`, `/stats`).
    FakeFcm {
        #[arg(long, default_value = "127.0.0.1:9300")]
        listen: SocketAddr,
        /// Where to write the service-account file to configure iyagi with.
        #[arg(long)]
        key_file: std::path::PathBuf,
    },
    /// One group room of M members; deliveries per second, CPU per delivery.
    Fanout {
        #[arg(long, default_value_t = 1000)]
        members: usize,
        #[arg(long, default_value_t = 10)]
        senders: usize,
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
    /// A device away while K messages arrive reconnects and syncs.
    Catchup {
        #[arg(long, default_value_t = 1000)]
        messages: u64,
    },
    /// Failed logins from many addresses; the server's memory during and after.
    LoginFlood {
        #[arg(long, default_value_t = 1200)]
        attempts: usize,
        #[arg(long, default_value_t = 40)]
        addresses: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 5)]
        settle_secs: u64,
    },
    /// Image uploads (photo-like JPEGs of `megapixels`) or voice uploads
    /// (`voice_secs` of AAC each), `concurrency` at once: uploads per
    /// second, server CPU per upload, the server's peak RSS meanwhile.
    Media {
        #[arg(long, default_value_t = 1.0)]
        megapixels: f64,
        /// Upload voice files of this many seconds instead of images.
        #[arg(long)]
        voice_secs: Option<f64>,
        #[arg(long, default_value_t = 64)]
        uploads: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Run the bare relay server.
    Relay {
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: SocketAddr,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let ctx = Context {
        target: Target::new(&cli.target, cli.relay),
        server_pid: cli.server_pid,
        progress: !cli.quiet,
    };
    let report = match cli.command {
        Command::Relay { listen } => return iyagi_bench::relay::serve(listen).await,
        Command::FakeFcm { listen, key_file } => {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let fake = iyagi_testkit::push_fakes::FakeFcm::serve(listener, Some(key_file)).await;
            eprintln!("fake FCM at {}", fake.base_url);
            fake.wait().await;
            return Ok(());
        }
        Command::Push {
            members,
            rate,
            secs,
            fake_fcm,
        } => {
            let opts = scenarios::push::Options {
                members,
                rate,
                duration: Duration::from_secs(secs),
                fake_fcm,
            };
            scenarios::push::run(&ctx, opts).await?
        }
        Command::Idle {
            connections,
            users,
            hold_secs,
            concurrency,
        } => {
            let opts = scenarios::idle::Options {
                connections,
                users,
                hold: Duration::from_secs(hold_secs),
                concurrency,
            };
            scenarios::idle::run(&ctx, opts).await?
        }
        Command::Pairs {
            pairs,
            window,
            messages,
            rate,
            pad,
            push,
        } => {
            scenarios::pairs::run(
                &ctx,
                scenarios::pairs::Options {
                    pairs,
                    window,
                    messages,
                    rate,
                    pad,
                    push,
                },
            )
            .await?
        }
        Command::Fanout {
            members,
            senders,
            rate,
            secs,
        } => {
            let opts = scenarios::fanout::Options {
                members,
                senders,
                rate,
                duration: Duration::from_secs(secs),
            };
            scenarios::fanout::run(&ctx, opts).await?
        }
        Command::Media {
            megapixels,
            voice_secs,
            uploads,
            concurrency,
        } => {
            let opts = scenarios::media::Options {
                megapixels,
                voice_secs,
                uploads,
                concurrency,
            };
            scenarios::media::run(&ctx, opts).await?
        }
        Command::LoginFlood {
            attempts,
            addresses,
            concurrency,
            settle_secs,
        } => {
            let opts = scenarios::login_flood::Options {
                attempts,
                addresses,
                concurrency,
                settle: Duration::from_secs(settle_secs),
            };
            scenarios::login_flood::run(&ctx, opts).await?
        }
        Command::Catchup { messages } => {
            scenarios::catchup::run(&ctx, scenarios::catchup::Options { messages }).await?
        }
    };
    print!("{}", report.human());
    println!("{}", report.json_line());
    Ok(())
}
