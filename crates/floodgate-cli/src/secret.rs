//! A password as the command line and option files give it: Debug (and so any `{:?}` of the
//! parsed arguments) never prints it.

/// A password; `expose` is the only way to its text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The password itself, for the one place that logs in with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Secret {
        Secret(text)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_password() {
        let s = Secret::from("hunter2".to_string());
        assert_eq!(format!("{s:?} {:?}", Some(&s)), "<hidden> Some(<hidden>)");
        assert_eq!(s.expose(), "hunter2");
    }
}
