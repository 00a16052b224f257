//! Smoke runs of every scenario with tiny counts, against a real iyagi
//! server and the bare relay on ephemeral ports, so the generator never rots.
//! (Figures are not asserted: benchmarks are not tests. Correctness is: no
//! losses, no duplicates, every connection up.)

use std::time::Duration;

use iyagi_bench::Report;
use iyagi_bench::scenarios::{self, Context};
use iyagi_bench::setup::Target;

async fn iyagi() -> (
    Target,
    iyagi_testkit::TestDb,
    tokio::sync::oneshot::Sender<()>,
) {
    iyagi_with(|_| {}).await
}

async fn iyagi_with(
    configure: impl FnOnce(&mut iyagi_server::Settings),
) -> (
    Target,
    iyagi_testkit::TestDb,
    tokio::sync::oneshot::Sender<()>,
) {
    let db = iyagi_testkit::TestDb::sqlite();
    let mut settings = iyagi_server::Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.database.url = db.url.clone().into();
    settings.auth.password.memory_kib = 64;
    settings.auth.password.iterations = 1;
    settings.auth.rate_limit.register_per_address_per_minute = 100_000;
    settings.auth.rate_limit.login_per_address_per_minute = 100_000;
    settings.ws.frames_per_second = 100_000;
    configure(&mut settings);
    let app = iyagi_server::Application::build(settings).await.unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    (Target::new(&addr.to_string(), false), db, stop)
}

async fn relay() -> Target {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, iyagi_bench::relay::router()).await });
    Target::new(&addr.to_string(), true)
}

fn context(target: Target) -> Context {
    // This process is the server: its own /proc entry gives CPU and memory.
    Context {
        target,
        server_pid: Some(std::process::id()),
        progress: false,
    }
}

fn assert_clean(report: &Report) {
    assert_eq!(report.get_u64("losses"), Some(0), "{}", report.human());
    assert_eq!(report.get_u64("duplicates"), Some(0), "{}", report.human());
    assert!(report.json_line().starts_with('{'));
}

#[tokio::test]
async fn every_scenario_runs_against_iyagi_and_the_relay() {
    let (iyagi, db, stop) = iyagi().await;
    let relay = relay().await;
    for target in [iyagi, relay] {
        let ctx = context(target.clone());
        let idle = scenarios::idle::run(
            &ctx,
            scenarios::idle::Options {
                connections: 40,
                users: 5,
                hold: Duration::from_millis(300),
                concurrency: 16,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            idle.get_u64("connections_established"),
            Some(40),
            "{}",
            idle.human()
        );
        assert!(idle.get_f64("server_kib_per_connection").is_some());

        let pairs = scenarios::pairs::run(
            &ctx,
            scenarios::pairs::Options {
                pairs: 3,
                window: 4,
                messages: 30,
                rate: None,
                pad: 16,
                push: false,
            },
        )
        .await
        .unwrap();
        assert_clean(&pairs);
        assert_eq!(pairs.get_u64("delivered"), Some(90));
        assert!(pairs.get_f64("latency_p99_us").is_some());
        // iyagi's writer totals come from its /metrics; the relay has none.
        let batch = pairs.get_f64("server_messages_per_commit");
        if target.relay {
            assert_eq!(batch, None);
        } else {
            let batch = batch.expect("iyagi reports messages per commit");
            assert!((1.0..=90.0).contains(&batch), "{batch} messages per commit");
        }

        let paced = scenarios::pairs::run(
            &ctx,
            scenarios::pairs::Options {
                pairs: 2,
                window: 1,
                messages: 10,
                rate: Some(200.0),
                pad: 0,
                push: false,
            },
        )
        .await
        .unwrap();
        assert_clean(&paced);

        let fanout = scenarios::fanout::run(
            &ctx,
            scenarios::fanout::Options {
                members: 8,
                senders: 2,
                rate: 40.0,
                duration: Duration::from_millis(500),
            },
        )
        .await
        .unwrap();
        assert_clean(&fanout);
        assert_eq!(
            fanout.get_u64("deliveries"),
            Some(fanout.get_u64("messages_sent").unwrap() * 8)
        );
        assert!(
            fanout.get_f64("connect_seconds").is_some_and(|s| s > 0.0),
            "{}",
            fanout.human()
        );

        let catchup = scenarios::catchup::run(&ctx, scenarios::catchup::Options { messages: 50 })
            .await
            .unwrap();
        if target.relay {
            assert!(!catchup.notes.is_empty());
        } else {
            assert_clean(&catchup);
            assert_eq!(catchup.get_u64("replayed"), Some(50));
        }
    }
    let _ = stop.send(());
    db.cleanup().await;
}

#[tokio::test]
async fn the_push_scenarios_run_against_a_fake_fcm() {
    let fcm = iyagi_testkit::push_fakes::FakeFcm::start().await;
    let (target, db, stop) = iyagi_with(|settings| {
        settings.push.fcm = Some(iyagi_push::FcmSettings {
            service_account_file: fcm.service_account_file(),
            base_url: fcm.base_url.clone(),
            token_uri: String::new(),
        });
        settings.push.poll_ms = 50;
    })
    .await;
    let ctx = context(target);
    let push = scenarios::push::run(
        &ctx,
        scenarios::push::Options {
            members: 5,
            rate: 20.0,
            duration: Duration::from_millis(500),
            fake_fcm: fcm.base_url.trim_start_matches("http://").to_owned(),
        },
    )
    .await
    .unwrap();
    // Every member gets the newest message's push; earlier ones may have
    // collapsed into it while waiting, but never more than were due.
    assert_eq!(
        push.get_u64("newest_message_pushed_to"),
        Some(4),
        "{}",
        push.human()
    );
    assert!(
        push.get_u64("notifications_delivered") <= push.get_u64("notifications_expected"),
        "{}",
        push.human()
    );
    assert!(push.notes.is_empty(), "{}", push.human());
    assert!(
        push.get_f64("commit_to_provider_p99_us").is_some(),
        "{}",
        push.human()
    );
    let pairs = scenarios::pairs::run(
        &ctx,
        scenarios::pairs::Options {
            pairs: 2,
            window: 2,
            messages: 10,
            rate: None,
            pad: 0,
            push: true,
        },
    )
    .await
    .unwrap();
    assert_clean(&pairs);
    assert!(fcm.rejected().is_empty(), "{:?}", fcm.rejected());
    let _ = stop.send(());
    db.cleanup().await;
}
