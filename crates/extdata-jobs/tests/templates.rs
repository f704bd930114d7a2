//! Strict templates: what does not exist is an error naming it, the template and the
//! line, never an empty string; `on_error = "empty"` is the one explicit opt-in.

use std::sync::Arc;

use extdata::{ErrorKind, Result};
use extdata_jobs::{Lookups, render, render_named};
use serde_json::{Value as Json, json};

mod support;
use support::*;

/// `last_order` over the seeded orders, and three lookups of a table that does not exist.
fn lookups_config() -> String {
    let broken = "SELECT total FROM no_such_table WHERE email = :email";
    [
        config_entry(
            "lookups",
            "last_order",
            CRM,
            "SELECT id, total FROM orders WHERE email = :email ORDER BY created_at DESC LIMIT 1",
            "",
        ),
        config_entry("lookups", "broken", CRM, broken, "on_error = \"empty\""),
        config_entry(
            "lookups",
            "broken_rows",
            CRM,
            broken,
            "result = \"rows\"\non_error = \"empty\"",
        ),
        config_entry("lookups", "broken_fails", CRM, broken, ""),
    ]
    .concat()
}

/// The subscriber of every test: its values must never appear in an error.
fn ann() -> Json {
    json!({ "name": "Ann-Secret-Name", "email": "a@x.io", "city": "Porto" })
}

/// The lookups of [`lookups_config`] over the seeded orders, and their folder.
async fn lookups() -> (Fixture, Lookups) {
    let fixture = Fixture::new();
    let jobs = Arc::new(fixture.seeded(&lookups_config()).await);
    (fixture, Lookups::new(jobs, 1000))
}

async fn mail(lookups: &Lookups, template: &str) -> Result<String> {
    render_named(
        lookups.clone(),
        Some("42".into()),
        "mail.j2".into(),
        template.into(),
        ann(),
    )
    .await
}

fn assert_no_value(text: &str) {
    for value in ["Ann-Secret-Name", "a@x.io", "Porto"] {
        assert!(!text.contains(value), "a subscriber value in: {text}");
    }
}

#[tokio::test]
async fn a_misspelt_subscriber_field_names_itself_the_file_the_line_and_the_fix() {
    let (_fixture, lookups) = lookups().await;
    let error = mail(
        &lookups,
        "Hello {{ subscriber.name }},\nyour mail: {{ subscriber.mail }}\n",
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Parameter);
    assert_eq!(
        error.to_string(),
        "template `mail.j2` line 2: `subscriber.mail` is undefined (did you mean `subscriber.email`?)"
    );
    assert_no_value(&format!("{error} {error:?}"));
    let error = mail(&lookups, "{{ subscriber.postcode }}")
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "template `mail.j2` line 1: `subscriber.postcode` is undefined (the subscriber's fields: name, email, city)"
    );
}

#[tokio::test]
async fn undefined_variables_and_attributes_are_errors_never_empty_strings() {
    let (_fixture, lookups) = lookups().await;
    for (template, expression, line) in [
        ("{{ customer }}", "customer", 1),
        ("a\nb\n{{ customer.name }}", "customer.name", 3),
        ("{% if subscriber.vip %}VIP{% endif %}", "subscriber.vip", 1),
        (
            "{{ lookup(\"last_order\", email=subscriber.email).totl }}",
            "lookup(\"last_order\", email=subscriber.email).totl",
            1,
        ),
        (
            "{% for o in subscriber.orders %}{{ o }}{% endfor %}",
            "subscriber.orders",
            1,
        ),
    ] {
        let error = mail(&lookups, template).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Parameter, "{template}: {error}");
        let text = error.to_string();
        assert!(
            text.starts_with(&format!(
                "template `mail.j2` line {line}: `{expression}` is undefined"
            )),
            "{template}: {text}"
        );
        assert_no_value(&text);
    }
}

#[tokio::test]
async fn a_lookup_without_a_row_is_none_to_test_or_default() {
    let (_fixture, lookups) = lookups().await;
    let nobody = r#"{% set o = lookup("last_order", email="nobody@x.io") %}"#;
    assert_eq!(
        mail(
            &lookups,
            &format!("{nobody}{{% if o %}}{{{{ o.total }}}}{{% else %}}none{{% endif %}}")
        )
        .await
        .unwrap(),
        "none"
    );
    assert_eq!(
        mail(
            &lookups,
            &format!("{nobody}{{{{ o.total | default(\"-\") }}}}")
        )
        .await
        .unwrap(),
        "-"
    );
    let error = mail(&lookups, &format!("{nobody}\n{{{{ o.total }}}}"))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "template `mail.j2` line 2: `o.total` is undefined"
    );
    let error = mail(
        &lookups,
        r#"{{ lookup("last_order", email="nobody@x.io").total }}"#,
    )
    .await
    .unwrap_err();
    assert!(
        error.to_string().ends_with(
            "(a lookup that finds no row is none: test it with `{% if %}` or add `| default(\"\")`)"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn on_error_empty_is_the_explicit_opt_in_to_render_nothing() {
    let (_fixture, lookups) = lookups().await;
    let rendered = mail(
        &lookups,
        r#"[{{ lookup("broken", email=subscriber.email).total }}][{% for r in lookup("broken_rows", email=subscriber.email) %}{{ r.total }}{% endfor %}][{% if lookup("broken", email=subscriber.email) %}x{% endif %}]"#,
    )
    .await
    .unwrap();
    assert_eq!(rendered, "[][][]");
    // Without it, the lookup's own error fails the render.
    let error = mail(
        &lookups,
        r#"{{ lookup("broken_fails", email=subscriber.email).total }}"#,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Query, "{error}");
    assert!(
        error.to_string().contains("lookup `broken_fails`"),
        "{error}"
    );
}

#[tokio::test]
async fn syntax_errors_name_the_template_and_line_not_string() {
    let (_fixture, lookups) = lookups().await;
    let error = mail(&lookups, "line one\n{{ subscriber.name ")
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("template `mail.j2` line 2: "), "{text}");
    assert!(!text.contains("<string>"), "{text}");
    let unnamed = render(
        lookups.clone(),
        Some("42".into()),
        "{{ subscriber.mail }}".into(),
        ann(),
    )
    .await
    .unwrap_err();
    assert!(
        unnamed
            .to_string()
            .starts_with("template `template` line 1: `subscriber.mail` is undefined"),
        "{unnamed}"
    );
}

#[tokio::test]
async fn defined_fields_and_lookups_still_render() {
    let (_fixture, lookups) = lookups().await;
    assert_eq!(
        mail(
            &lookups,
            r#"{{ subscriber.city }}: {{ lookup("last_order", email=subscriber.email).total }}"#
        )
        .await
        .unwrap(),
        "Porto: 700"
    );
}
