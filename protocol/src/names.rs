//! The platform's host names under the base domain, chosen so that no
//! project name can ever produce a host of another project:
//!
//! | host | label |
//! |---|---|
//! | production | `<project>` |
//! | one deployment | `<deployment id>--<project>` |
//! | a branch's newest build | `git-<branch slug>--<project>` |
//!
//! Project names may not contain `--`, and neither may deployment ids
//! (alphanumeric) nor branch slugs (single hyphens only). So the project
//! a label belongs to is the part after its last `--`, or the whole label
//! when it has none: [`project_of`] is a function of the label, which is
//! what makes two projects' hosts disjoint. A deployment id never starts
//! with `git-` (it has no hyphen), so a project's deployment and branch
//! hosts are disjoint too. This is Netlify's `<deploy-id>--<site>` scheme.

/// What separates the project from the rest of a label.
pub const SEPARATOR: &str = "--";
/// Longest project name: leaves room for `<deployment id>--` in a label.
pub const MAX_PROJECT_NAME: usize = 40;
const MAX_LABEL: usize = 63;

/// Why a name cannot be a project's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("project name must be 1-{MAX_PROJECT_NAME} characters of a-z, 0-9 and '-', not starting or ending with '-'")]
    Grammar,
    #[error("project name may not contain \"--\": it separates a deployment or branch from the project in host names")]
    Separator,
}

/// A project name is a DNS label of at most 40 characters with no `--`.
pub fn validate_project_name(name: &str) -> Result<(), NameError> {
    if name.len() > MAX_PROJECT_NAME || !crate::host::is_valid_label(name) {
        return Err(NameError::Grammar);
    }
    if name.contains(SEPARATOR) {
        return Err(NameError::Separator);
    }
    Ok(())
}

/// The production label of `project`.
pub fn production_label(project: &str) -> String {
    project.to_string()
}

/// The label of one deployment of `project` (`deployment` is an id:
/// lowercase alphanumeric).
pub fn deployment_label(project: &str, deployment: &str) -> String {
    format!("{deployment}{SEPARATOR}{project}")
}

/// The stable label of `branch`'s newest build of `project`. A branch
/// whose name is not already its slug, or whose slug does not fit, gets
/// a hash of the name too, so `feature/x` and `feature-x` never share one.
pub fn branch_label(project: &str, branch: &str) -> String {
    let mut slug = String::new();
    for c in branch.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    let suffix = format!("{SEPARATOR}{project}");
    let room = MAX_LABEL.saturating_sub(suffix.len() + "git-".len());
    if !slug.is_empty() && slug.len() <= room && slug == branch {
        return format!("git-{slug}{suffix}");
    }
    let hash = &blake3::hash(branch.as_bytes()).to_hex()[..6];
    let keep = room.saturating_sub(7).min(slug.len());
    let cut = slug[..keep].trim_end_matches('-');
    if cut.is_empty() {
        format!("git-{hash}{suffix}")
    } else {
        format!("git-{cut}-{hash}{suffix}")
    }
}

/// The project a platform label belongs to.
pub fn project_of(label: &str) -> &str {
    match label.rfind(SEPARATOR) {
        Some(i) => &label[i + SEPARATOR.len()..],
        None => label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_table() {
        let cases: &[(&str, Result<(), NameError>)] = &[
            ("blog", Ok(())),
            ("my-shop-2", Ok(())),
            ("a", Ok(())),
            ("shop--abc", Err(NameError::Separator)),
            ("git-main--shop", Err(NameError::Separator)),
            ("xn--80ak6aa92e", Err(NameError::Separator)),
            ("-blog", Err(NameError::Grammar)),
            ("blog-", Err(NameError::Grammar)),
            ("Blog", Err(NameError::Grammar)),
            ("", Err(NameError::Grammar)),
            ("b.log", Err(NameError::Grammar)),
        ];
        for (name, want) in cases {
            assert_eq!(&validate_project_name(name), want, "{name}");
        }
        assert!(validate_project_name(&"p".repeat(40)).is_ok());
        assert!(validate_project_name(&"p".repeat(41)).is_err());
    }

    #[test]
    fn labels_table() {
        assert_eq!(deployment_label("shop", "abc123defg"), "abc123defg--shop");
        assert_eq!(branch_label("blog", "main"), "git-main--blog");
        assert!(branch_label("blog", "feature/login").starts_with("git-feature-login-"));
        assert_ne!(
            branch_label("b", "feature/x"),
            branch_label("b", "feature-x")
        );
        assert_ne!(branch_label("b", "Main"), branch_label("b", "main"));
        assert_eq!(project_of("abc123defg--shop"), "shop");
        assert_eq!(project_of("git-main--shop"), "shop");
        assert_eq!(project_of("shop"), "shop");
    }

    fn project() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?"
            .prop_filter("a valid project name", |n| validate_project_name(n).is_ok())
    }

    fn labels(p: &str, deployment: &str, branch: &str) -> [String; 3] {
        [
            production_label(p),
            deployment_label(p, deployment),
            branch_label(p, branch),
        ]
    }

    proptest! {
        /// Every label names its own project, is a valid DNS label, and no
        /// label of one project is a label of another.
        #[test]
        fn no_project_can_produce_another_projects_host(
            p in project(),
            q in project(),
            d in "[a-z0-9]{10}",
            e in "[a-z0-9]{10}",
            b in "\\PC{0,80}",
            c in "\\PC{0,80}",
        ) {
            for l in labels(&p, &d, &b) {
                prop_assert_eq!(project_of(&l), p.as_str());
                prop_assert!(crate::host::is_valid_label(&l), "{}", l);
            }
            if p != q {
                let mine = labels(&p, &d, &b);
                for l in labels(&q, &e, &c) {
                    prop_assert!(!mine.contains(&l), "{} is a host of both {} and {}", l, p, q);
                }
            }
            // Within one project, a deployment and a branch never share a host.
            prop_assert_ne!(deployment_label(&p, &d), branch_label(&p, &b));
        }
    }
}
