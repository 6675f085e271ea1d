//! The mysqldump statement classifier and its helpers, and the drill's post-data object
//! names: never panic on any statement.
#![no_main]

use floodgate_format::mysqldump::{looks_like_sql, object_words, schema_target, Classifier};
use floodgate_format::objects::object_change;
use floodgate_format::split::{split_all, Statement, Terminator};
use libfuzzer_sys::fuzz_target;

fn classify_all(statements: &[Statement], into: Option<String>) {
    let mut c = Classifier::new(into);
    for s in statements {
        let _ = schema_target(&s.text);
        let _ = object_words(&s.text);
        let _ = object_change(&s.text);
        let _ = c.classify(s.clone(), "fuzz");
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_sql(data);
    // The whole input as one statement: reaches the classifier even when it does not split
    // (an unterminated quote is a split error).
    let whole = [Statement { offset: 0, text: data.to_vec(), terminated: true }];
    classify_all(&whole, None);
    if let Ok(statements) = split_all(data, Terminator::Delimiter) {
        classify_all(&statements, None);
        // `--into` rewrites USE and CREATE/DROP DATABASE: another path through the classifier.
        classify_all(&statements, Some("fuzz_into".into()));
    }
});
