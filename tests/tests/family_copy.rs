//! The family's copy end to end: the real `eenplan` binary prints a plan that holds zorg and
//! justitie notes as PDF and as HTML; the PDF's text and the HTML as Chromium prints it hold
//! the plan and none of those notes. And only the regisseur puts an item in, which every
//! device that holds its compartment then prints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use eenplan_core::CoreError;
use eenplan_core::family_copy::FamilyCopy;
use eenplan_core::plan::FamilyCopyItem;
use eenplan_tests::bench::policy_where_reading_all;
use eenplan_tests::cli::Cli;
use eenplan_tests::network::Network;

/// Words only a professional note holds: none may reach the family.
const ZORG_WORD: &str = "Methadonprogramma";
const JUSTITIE_WORD: &str = "Taakstraf";
const HOME_VISIT_WORD: &str = "Keukentafelgesprek";

/// What the family does read.
const PLAN_WORDS: &[&str] = &[
    "Plan van het gezin Jansen",
    "Zoë (dochter)",
    // Letters outside WinAnsi: the PDF embeds a face that has them.
    "Ayşe Yıldız (moeder)",
    "Financiën",
    "Schulden in beeld",
    "Brieven samen openen",
    "Rita (Wijkteam Noord)",
    "3 december 2026",
    "(versie 1). Besproken met Anja op 3 december; zij is akkoord.",
    "We bellen elke maandag",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Chromium and pdftotext, installed on a fresh machine by the project's script.
fn print_tools() -> (PathBuf, PathBuf) {
    let script = workspace().join("scripts/install-test-deps.sh");
    let status = Command::new(&script).arg("print").status().unwrap();
    assert!(status.success(), "{} print failed", script.display());
    (PathBuf::from("/usr/bin/chromium"), PathBuf::from("/usr/bin/pdftotext"))
}

fn run(what: &str, command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The text of a PDF, with its lines joined by spaces (a wrapped sentence reads whole).
fn pdf_text(pdftotext: &Path, pdf: &Path) -> String {
    let text = run("pdftotext", Command::new(pdftotext).arg("-enc").arg("UTF-8").arg(pdf).arg("-"));
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn assert_family_reads_the_plan_only(what: &str, text: &str) {
    for word in PLAN_WORDS {
        assert!(text.contains(word), "{what} lacks {word:?}: {text}");
    }
    for word in [ZORG_WORD, JUSTITIE_WORD, HOME_VISIT_WORD] {
        assert!(!text.contains(word), "{what} holds the professionals' {word:?}");
    }
}

#[test]
fn the_printed_pdf_and_the_html_as_chromium_prints_it_hold_the_plan_and_no_zorg_or_justitie_note() {
    let (chromium, pdftotext) = print_tools();
    let net = Network::start(&[("Rita", "Wijkteam Noord", "wijkteam")]);
    let dir = tempfile::tempdir().unwrap();
    // Rita's device holds every compartment, so that what keeps zorg and justitie out of the
    // copy is the copy's rule, not a missing key.
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, policy_where_reading_all("wijkteam")).unwrap();
    net.admin.run(&["policy", "set", policy.to_str().unwrap()]);
    let cli = Cli::enrolled(&net, "rita-cli", "Rita");
    let plan = cli.ok(&["plan", "create", "--family", "Jansen"]);
    cli.ok(&["sync"]);
    cli.ok(&["member", "add", &plan, "--name", "Zoë", "--relation", "dochter"]);
    cli.ok(&["member", "add", &plan, "--name", "Ayşe Yıldız", "--relation", "moeder"]);
    let goal = cli.ok(&["goal", "add", &plan, "--domain", "financiën", "--title", "Schulden in beeld"]);
    cli.ok(&[
        "action",
        "add",
        &plan,
        "--goal",
        &goal,
        "--title",
        "Brieven samen openen",
        "--owner",
        "Wijkteam Noord",
        "--owner-person",
        "Rita",
        "--due",
        "2026-12-03",
    ]);
    cli.ok(&["agreement", "add", &plan, "--text", "We bellen elke maandag om tien uur."]);
    cli.ok(&["note", "add", &plan, "--compartment", "zorg", "--text", &format!("{ZORG_WORD} loopt goed.")]);
    cli.ok(&[
        "note",
        "add",
        &plan,
        "--compartment",
        "justitie",
        "--text",
        &format!("{JUSTITIE_WORD}: 40 uur."),
    ]);
    cli.ok(&[
        "note",
        "add",
        &plan,
        "--compartment",
        "basis",
        "--kind",
        "home_visit",
        "--text",
        &format!("{HOME_VISIT_WORD} met moeder."),
    ]);

    cli.ok(&["plan", "adopt", &plan, "--with-family", "Besproken met Anja op 3 december; zij is akkoord"]);

    let pdf = dir.path().join("jansen.pdf");
    cli.ok(&["plan", "print", &plan, "--pdf", pdf.to_str().unwrap()]);
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-"));
    assert_family_reads_the_plan_only("the CLI's PDF", &pdf_text(&pdftotext, &pdf));

    let html = dir.path().join("jansen.html");
    cli.ok(&["plan", "print", &plan, "--html", html.to_str().unwrap()]);
    let printed = dir.path().join("jansen-chromium.pdf");
    run(
        "chromium --print-to-pdf",
        Command::new(&chromium)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer"])
            .arg(format!("--user-data-dir={}", dir.path().join("chromium-profile").display()))
            .arg(format!("--print-to-pdf={}", printed.display()))
            .arg(format!("file://{}", html.display())),
    );
    let text = pdf_text(&pdftotext, &printed);
    assert_family_reads_the_plan_only("the HTML as Chromium prints it", &text);
    assert!(text.contains("Pagina 1 van 1"), "the print CSS numbers the pages: {text}");
}

#[test]
fn only_the_regisseur_puts_a_safety_item_in_and_only_devices_that_hold_veiligheid_print_it() {
    let net = Network::start(&[
        ("Rita", "Wijkteam Noord", "wijkteam"),
        ("Otto", "Politie Midden", "politie"),
        ("Sanne", "Basisschool De Linde", "school"),
    ]);
    let mut rita = net.device("rita", "Rita");
    let mut otto = net.device("otto", "Otto");
    let mut sanne = net.device("sanne", "Sanne");
    let plan = rita.create_plan("Jansen").unwrap();
    let danger = "Vader dreigt te slaan als hij gedronken heeft";
    let item =
        rita.edit(&plan, |p| p.add_safety_item(danger, "Vader belt zijn broer als hij boos wordt")).unwrap();
    rita.sync().unwrap();
    rita.add_participant(&plan, "Otto", "politie").unwrap();
    rita.add_participant(&plan, "Sanne", "school").unwrap();
    for _ in 0..2 {
        for device in [&mut rita, &mut otto, &mut sanne] {
            device.sync().unwrap();
        }
    }
    let item = FamilyCopyItem::SafetyItem { id: item };

    // Otto reads the safety plan, but regie is Rita's.
    let refused = otto.include_in_family_copy(&plan, item, true).unwrap_err();
    assert!(matches!(refused, CoreError::NotAllowed(ref why) if why.contains("regisseur")), "{refused}");

    rita.include_in_family_copy(&plan, item, true).unwrap();
    for device in [&mut rita, &mut otto, &mut sanne] {
        device.sync().unwrap();
    }
    let html = |copy: FamilyCopy| copy.to_html().unwrap();
    assert!(html(rita.family_copy(&plan).unwrap()).contains(danger));
    assert!(html(otto.family_copy(&plan).unwrap()).contains(danger), "Otto holds veiligheid");
    // The school holds basis only: it sees that something is in, but has no text to print.
    assert_eq!(sanne.read(&plan).unwrap().family_copy_items, vec![item]);
    let school = sanne.family_copy(&plan).unwrap();
    assert!(school.included.is_empty());
    assert!(!html(school).contains(danger));
}
