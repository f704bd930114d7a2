//! [`debug_fields!`](crate::debug_fields): a hand-written `Debug` that lists what it
//! shows, so that a secret is left out by omission and never by remembering to.

/// Implements `Debug` for a struct as `f.debug_struct("Name")` with the listed fields,
/// in the order listed. Nothing else is printed: a field that is not listed (a password,
/// a driver's options, parameter values) cannot leak through `Debug`.
///
/// `Name |this| { entries }` names the value `this` for the entries, each one of:
/// - `field`: prints `this.field` under its own name;
/// - `field: secret`: for an `Option` holding a secret, prints `Some("[REDACTED]")`
///   ([`driver::REDACTED`](crate::driver::REDACTED)) or `None`, never the secret;
/// - `label: expression`: prints the expression under `label` (`ca: this.ca.is_some()`).
///
/// A generic type names its parameters (`Wrapper<T> |this| { .. }`). The impl puts no
/// bound on them: list only fields whose `Debug` does not depend on them.
///
/// A trailing `..` ends with `finish_non_exhaustive` (`Name { field: …, .. }`), for a type
/// whose other fields are left out on purpose.
///
/// ```
/// use extdata_core::SecretString;
///
/// struct Login {
///     user: String,
///     password: Option<SecretString>,
///     roles: Vec<String>,
///     token: String,
/// }
///
/// extdata_core::debug_fields!(Login |login| {
///     user,
///     password: secret,
///     roles: login.roles.len(),
///     ..
/// });
///
/// let login = Login {
///     user: "ann".into(),
///     password: Some("hunter2".into()),
///     roles: vec!["reader".into()],
///     token: "t0ken".into(),
/// };
/// assert_eq!(
///     format!("{login:?}"),
///     r#"Login { user: "ann", password: Some("[REDACTED]"), roles: 1, .. }"#
/// );
/// ```
#[macro_export]
macro_rules! debug_fields {
    ($type:ident $(<$($param:ident),+>)? |$this:ident| { $($entries:tt)* }) => {
        impl $(<$($param),+>)? ::core::fmt::Debug for $type $(<$($param),+>)? {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let $this = self;
                let mut out = f.debug_struct(stringify!($type));
                $crate::debug_fields!(@entry $this out $($entries)*)
            }
        }
    };
    (@entry $this:ident $out:ident) => {
        $out.finish()
    };
    (@entry $this:ident $out:ident ..) => {
        $out.finish_non_exhaustive()
    };
    (@entry $this:ident $out:ident $field:ident: secret $(, $($rest:tt)*)?) => {{
        $out.field(
            stringify!($field),
            &$this.$field.as_ref().map(|_| $crate::driver::REDACTED),
        );
        $crate::debug_fields!(@entry $this $out $($($rest)*)?)
    }};
    (@entry $this:ident $out:ident $label:ident: $value:expr $(, $($rest:tt)*)?) => {{
        $out.field(stringify!($label), &$value);
        $crate::debug_fields!(@entry $this $out $($($rest)*)?)
    }};
    (@entry $this:ident $out:ident $field:ident $(, $($rest:tt)*)?) => {{
        $out.field(stringify!($field), &$this.$field);
        $crate::debug_fields!(@entry $this $out $($($rest)*)?)
    }};
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    struct Account {
        name: String,
        password: Option<SecretString>,
        key: Option<SecretString>,
        hosts: Vec<String>,
        port: u16,
    }

    crate::debug_fields!(Account |account| {
        name,
        password: secret,
        key: secret,
        hosts: account.hosts.len(),
        port,
    });

    struct Session {
        id: u32,
        #[expect(dead_code, reason = "held to be left out of Debug")]
        token: SecretString,
    }

    crate::debug_fields!(Session |session| { id, .. });

    #[test]
    fn debug_shows_listed_fields_and_never_a_secret() {
        let account = Account {
            name: "ann".into(),
            password: Some("hunter2".into()),
            key: None,
            hosts: vec!["a".into(), "b".into()],
            port: 5432,
        };
        let text = format!("{account:?}");
        assert_eq!(
            text,
            r#"Account { name: "ann", password: Some("[REDACTED]"), key: None, hosts: 2, port: 5432 }"#
        );
        assert!(!text.contains("hunter2"));
        let pretty = format!("{account:#?}");
        assert!(pretty.contains("password: Some(\n        \"[REDACTED]\""));
        assert!(!pretty.contains("hunter2"));
    }

    struct Wrapper<T> {
        count: usize,
        #[expect(dead_code, reason = "held to be left out of Debug")]
        inner: T,
    }

    crate::debug_fields!(Wrapper<T> |wrapper| { count, .. });

    /// No `Debug` of its own: a `Wrapper` of it still has one.
    struct Opaque;

    #[test]
    fn debug_of_a_generic_type_needs_no_bound_on_its_parameter() {
        let wrapper = Wrapper {
            count: 5,
            inner: Opaque,
        };
        assert_eq!(format!("{wrapper:?}"), "Wrapper { count: 5, .. }");
    }

    #[test]
    fn debug_with_dots_leaves_the_other_fields_out() {
        let session = Session {
            id: 7,
            token: "s3cr3t".into(),
        };
        assert_eq!(format!("{session:?}"), "Session { id: 7, .. }");
        assert!(!format!("{session:#?}").contains("s3cr3t"));
    }
}
