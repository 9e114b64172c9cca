//! The real server binary on PostgreSQL (`serve --database`): enrolment and sync end to end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eenplan_core::plan::NewGoal;
use eenplan_tests::network::Network;

const USERS: &[(&str, &str, &str)] =
    &[("Rita", "Wijkteam Noord", "wijkteam"), ("Wim", "Wijkteam Noord", "wijkteam")];

#[test]
fn a_server_on_postgresql_enrols_two_devices_and_syncs_an_edit_from_one_to_the_other() {
    let database = eenplan_tests::postgres::fresh_database();
    let net = Network::start_with(USERS, Some(&database));
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");

    let plan = rita.create_plan("Jansen").unwrap();
    rita.edit(&plan, |p| p.add_goal(NewGoal { domain: "financiën".into(), title: "Schulden".into() }))
        .unwrap();
    rita.sync().unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.sync().unwrap();
    wim.sync().unwrap();
    assert_eq!(wim.read(&plan).unwrap().goals[0].title, "Schulden");

    let goal = wim.read(&plan).unwrap().goals[0].id;
    wim.edit(&plan, |p| p.set_goal_title(goal, "Schulden in beeld")).unwrap();
    wim.sync().unwrap();
    rita.sync().unwrap();
    assert_eq!(rita.read(&plan).unwrap().goals[0].title, "Schulden in beeld");

    // Everything went to PostgreSQL: the data directory holds no SQLite database.
    assert!(!net.server.data.join("server.db").exists(), "the server wrote server.db");
}
