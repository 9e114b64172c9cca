//! The real server binary on PostgreSQL (`serve --database`): enrolment and sync end to end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eenplan_core::plan::NewGoal;
use eenplan_core::{Device, PlanId};
use eenplan_tests::network::Network;

const USERS: &[(&str, &str, &str)] =
    &[("Rita", "Wijkteam Noord", "wijkteam"), ("Wim", "Wijkteam Noord", "wijkteam")];

/// Rita's and Wim's devices, and a plan of Rita's with a goal titled `goal` that Wim takes
/// part in and has synced.
fn rita_shares_a_goal_with_wim(net: &Network, goal: &str) -> (Device, Device, PlanId) {
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.edit(&plan, |p| p.add_goal(NewGoal { domain: "financiën".into(), title: goal.into() })).unwrap();
    rita.sync().unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.sync().unwrap();
    wim.sync().unwrap();
    assert_eq!(wim.read(&plan).unwrap().goals[0].title, goal);
    (rita, wim, plan)
}

#[test]
fn a_server_on_postgresql_enrols_two_devices_and_syncs_an_edit_from_one_to_the_other() {
    let database = eenplan_tests::postgres::fresh_database();
    let net = Network::start_with(USERS, Some(&database));
    let (mut rita, mut wim, plan) = rita_shares_a_goal_with_wim(&net, "Schulden");

    let goal = wim.read(&plan).unwrap().goals[0].id;
    wim.edit(&plan, |p| p.set_goal_title(goal, "Schulden in beeld")).unwrap();
    wim.sync().unwrap();
    rita.sync().unwrap();
    assert_eq!(rita.read(&plan).unwrap().goals[0].title, "Schulden in beeld");

    // Once a device's access is remembered, the answer to its push is begun before the
    // commit and its first statement read by the group commit's `answer-facts` thread.
    for title in ["Schulden in beeld gebracht", "Schuldhulp gestart"] {
        wim.edit(&plan, |p| p.set_goal_title(goal, title)).unwrap();
        wim.sync().unwrap();
    }
    rita.sync().unwrap();
    assert_eq!(rita.read(&plan).unwrap().goals[0].title, "Schuldhulp gestart");
    let grouped = net.server.metric("eenplan_group_commit_answer_facts_total");
    assert!(grouped > 0, "no answer's facts were read in a group");
    assert_eq!(net.server.metric("eenplan_group_commit_answer_fact_failures_total"), 0);

    // Everything went to PostgreSQL: the data directory holds no SQLite database.
    assert!(!net.server.data.join("server.db").exists(), "the server wrote server.db");
}

#[test]
fn a_server_on_its_databases_host_reaches_postgresql_through_the_unix_socket_and_syncs() {
    let database = eenplan_tests::postgres::fresh_database();
    let socket = eenplan_tests::postgres::through_socket(&database);
    assert!(socket.contains("%2F"), "{socket} names no socket directory");
    let net = Network::start_with(USERS, Some(&socket));
    rita_shares_a_goal_with_wim(&net, "Huur");

    // Every session the server holds open on its database (its pool keeps them, and the
    // relay listens on one) came through the socket, whose clients PostgreSQL shows with port
    // -1. This query's own session comes over TCP.
    let mut client = postgres::Client::connect(&database, postgres::NoTls).unwrap();
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE client_port = -1), count(*) FILTER (WHERE client_port <> -1) \
             FROM pg_stat_activity \
             WHERE datname = current_database() AND backend_type = 'client backend' \
             AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap();
    let (through_socket, over_tcp): (i64, i64) = (row.get(0), row.get(1));
    assert!(through_socket > 0, "the server holds no session through the socket");
    assert_eq!(over_tcp, 0, "the server holds sessions over TCP");
}

/// The relay between server processes, driven directly: two processes' [`LiveEvents`] on one
/// database, as two `eenplan-server` instances hold them.
mod relay {
    use std::time::Duration;

    use eenplan_protocol::DocumentId;
    use eenplan_server::live_events::{Hint, LiveEvents, RelayTarget};
    use eenplan_server::storage::DeviceId;
    use tokio::sync::broadcast::Receiver;
    use tokio::sync::broadcast::error::TryRecvError;

    const PATIENCE: Duration = Duration::from_secs(10);

    fn next<T: Clone>(receiver: &mut Receiver<T>) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime
            .block_on(async { tokio::time::timeout(PATIENCE, receiver.recv()).await })
            .unwrap_or_else(|_| panic!("nothing came within {PATIENCE:?}"))
            .unwrap()
    }

    fn relayed(url: &str) -> LiveEvents {
        LiveEvents::relayed(&RelayTarget::parse(url).unwrap()).unwrap()
    }

    /// Cuts every relay connection to the database, as a database restart or a network
    /// failure would.
    fn cut_relay_connections(url: &str) -> u64 {
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        let row = client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'eenplan-relay'",
                &[],
            )
            .unwrap();
        u64::try_from(row.get::<_, i64>(0)).unwrap()
    }

    #[test]
    fn hints_and_revocations_cross_to_the_other_process_once_and_a_cut_connection_means_resync() {
        let url = eenplan_tests::postgres::fresh_database();
        let a = relayed(&url);
        let b = relayed(&url);
        let (mut a_hints, mut b_hints, mut b_revoked) = (a.hints(), b.hints(), b.revocations());
        // Each listener says resync once it listens: nothing sent before then reached it.
        assert_eq!(next(&mut a_hints), Hint::Resync);
        assert_eq!(next(&mut b_hints), Hint::Resync);

        let document = DocumentId { plan: [4; 16], compartment: 1 };
        a.hint(document);
        assert_eq!(next(&mut b_hints), Hint::Document(document));
        a.revoked(DeviceId([8; 16]));
        assert_eq!(next(&mut b_revoked), DeviceId([8; 16]));
        // A heard its own hint once, locally: the relay does not hand it back a second time
        // (B's hint that follows comes after it in A's channel).
        let from_b = DocumentId { plan: [5; 16], compartment: 0 };
        b.hint(from_b);
        assert_eq!(next(&mut a_hints), Hint::Document(document));
        assert_eq!(next(&mut a_hints), Hint::Document(from_b));
        assert_eq!(a_hints.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(next(&mut b_hints), Hint::Document(from_b));
        assert_eq!(b_hints.try_recv(), Err(TryRecvError::Empty));

        // Two listeners and (at least) one notifier are connected.
        assert!(cut_relay_connections(&url) >= 2);
        assert_eq!(next(&mut b_hints), Hint::Resync, "B's sockets must hear that hints may be lost");
        let later = DocumentId { plan: [6; 16], compartment: 2 };
        // The notifier reconnects too; until then its sends fail and say resync afterwards.
        a.hint(later);
        loop {
            match next(&mut b_hints) {
                Hint::Document(d) if d == later => break,
                Hint::Resync => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        a.shutdown();
        b.shutdown();
    }
}
