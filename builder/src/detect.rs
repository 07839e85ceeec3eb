//! What a source tree is and how to build it: framework, package manager,
//! commands and output directory, with the reasons for each guess.
//! [`detect`] is pure over a [`Tree`]; [`Tree::scan`] reads one from disk.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// User overrides from the project's settings; each `Some` wins over
/// detection. An empty command string means "skip this step".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSettings {
    /// Subfolder of the repository to build in (monorepos).
    pub root_dir: Option<String>,
    pub install_command: Option<String>,
    pub build_command: Option<String>,
    /// Relative to `root_dir`.
    pub output_dir: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framework {
    Static,
    Vite,
    Astro,
    NextStatic,
    SvelteKitStatic,
    NuxtGenerate,
    Gatsby,
    Docusaurus,
    Eleventy,
    Hugo,
    Zola,
    MkDocs,
    /// A package.json with a `build` script and no framework we know.
    NodeScripts,
    /// Nothing detected; the project's settings say how to build.
    Custom,
}

impl Framework {
    /// Where the framework writes only content-hashed files. Their names
    /// do not always look hashed (Vite's `index-BMbs-Q2W.js`), so the edge's
    /// own guess would miss some; the bundle says so explicitly instead.
    pub fn immutable_assets(self) -> Option<&'static str> {
        match self {
            Framework::Vite | Framework::Docusaurus => Some("/assets/*"),
            Framework::Astro => Some("/_astro/*"),
            Framework::NextStatic => Some("/_next/static/*"),
            Framework::SvelteKitStatic => Some("/_app/immutable/*"),
            Framework::NuxtGenerate => Some("/_nuxt/*"),
            _ => None,
        }
    }
}

/// The cache policy for a framework's hashed assets, unless the project's
/// own header rules already set one for that path.
pub fn add_immutable_rule(framework: Framework, routing: &mut protocol::routing::RoutingConfig) {
    let Some(source) = framework.immutable_assets() else {
        return;
    };
    let user_set = routing.headers.iter().any(|h| {
        h.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
    });
    if user_set {
        return;
    }
    routing.headers.push(protocol::routing::HeaderRule {
        source: source.to_string(),
        headers: vec![(
            "Cache-Control".to_string(),
            "public, max-age=31536000, immutable".to_string(),
        )],
    });
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Framework::Static => "a static site",
            Framework::Vite => "Vite",
            Framework::Astro => "Astro",
            Framework::NextStatic => "Next.js (static export)",
            Framework::SvelteKitStatic => "SvelteKit (static)",
            Framework::NuxtGenerate => "Nuxt (generate)",
            Framework::Gatsby => "Gatsby",
            Framework::Docusaurus => "Docusaurus",
            Framework::Eleventy => "Eleventy",
            Framework::Hugo => "Hugo",
            Framework::Zola => "Zola",
            Framework::MkDocs => "MkDocs",
            Framework::NodeScripts => "a Node project",
            Framework::Custom => "a custom build",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageManager {
    Npm,
    Pnpm,
    Yarn,
    Bun,
}

impl PackageManager {
    pub fn name(self) -> &'static str {
        match self {
            PackageManager::Npm => "npm",
            PackageManager::Pnpm => "pnpm",
            PackageManager::Yarn => "yarn",
            PackageManager::Bun => "bun",
        }
    }

    /// Host programs its commands need.
    pub fn tools(self) -> &'static [&'static str] {
        match self {
            PackageManager::Npm => &["node", "npm"],
            PackageManager::Pnpm => &["node", "pnpm"],
            PackageManager::Yarn => &["node", "yarn"],
            PackageManager::Bun => &["bun"],
        }
    }

    /// Runs a package binary without installing it on the fly.
    fn exec(self) -> &'static str {
        match self {
            PackageManager::Npm => "npx --no-install",
            PackageManager::Pnpm => "pnpm exec",
            PackageManager::Yarn => "yarn run",
            PackageManager::Bun => "bun x",
        }
    }
}

impl fmt::Display for PackageManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detected {
    pub framework: Framework,
    pub package_manager: Option<PackageManager>,
    /// The lockfile the package manager was recognised by (cache key).
    pub lockfile: Option<String>,
    pub install_command: Option<String>,
    pub build_command: Option<String>,
    /// Relative to the project root; `.` for the root itself.
    pub output_dir: String,
    /// Why the framework was chosen, and notes about it.
    pub reasons: Vec<String>,
    pub package_manager_reason: Option<String>,
    /// Programs the chosen commands need on the build host.
    pub tools_needed: Vec<&'static str>,
}

impl Detected {
    /// One log line: "Detected Vite (package.json depends on vite; …);
    /// package manager npm (package-lock.json)".
    pub fn summary(&self) -> String {
        let mut s = format!("Detected {}", self.framework);
        if !self.reasons.is_empty() {
            s.push_str(&format!(" ({})", self.reasons.join("; ")));
        }
        if let (Some(pm), Some(why)) = (self.package_manager, &self.package_manager_reason) {
            s.push_str(&format!("; package manager {pm} ({why})"));
        }
        s
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("could not tell how to build this project: no package.json with a build script, index.html, public/, Hugo, Zola or MkDocs config at its root — set build_command and output_dir")]
    Nothing,
    #[error("package.json is not valid JSON: {0}")]
    PackageJson(String),
    #[error("reading the source tree: {0}")]
    Io(#[from] std::io::Error),
}

/// The parts of package.json detection looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageJson {
    pub scripts: BTreeMap<String, String>,
    /// `dependencies` and `devDependencies` together.
    pub deps: BTreeSet<String>,
    /// The `packageManager` field (corepack), e.g. `pnpm@9.1.0`.
    pub package_manager: Option<String>,
}

impl PackageJson {
    pub fn parse(text: &str) -> Result<PackageJson, DetectError> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| DetectError::PackageJson(e.to_string()))?;
        let strings = |key: &str| -> BTreeMap<String, String> {
            v.get(key)
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut deps: BTreeSet<String> = strings("dependencies").into_keys().collect();
        deps.extend(strings("devDependencies").into_keys());
        Ok(PackageJson {
            scripts: strings("scripts"),
            deps,
            package_manager: v
                .get("packageManager")
                .and_then(|p| p.as_str())
                .map(str::to_string),
        })
    }
}

/// What detection sees of a source tree: relative paths present (folders
/// end in `/`), package.json, and the text of a few small config files.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub paths: BTreeSet<String>,
    pub package_json: Option<PackageJson>,
    pub texts: BTreeMap<String, String>,
}

/// Config files whose content decides between frameworks.
const READ_TEXTS: &[&str] = &[
    "config.toml",
    "config.yaml",
    "next.config.js",
    "next.config.mjs",
    "next.config.ts",
];
const SCAN_DEPTH: usize = 2;
const SCAN_MAX_ENTRIES: usize = 5000;
const MAX_TEXT_BYTES: u64 = 1024 * 1024;

impl Tree {
    /// Builds a tree from a list of paths (tests, uploaded file lists).
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Tree {
        let mut tree = Tree::default();
        for p in paths {
            // Every ancestor folder is present too.
            let mut acc = String::new();
            for part in p.split_inclusive('/') {
                acc.push_str(part);
                tree.paths.insert(acc.clone());
            }
        }
        tree
    }

    pub fn with_text(mut self, path: &str, text: &str) -> Tree {
        self.paths.insert(path.to_string());
        if path == "package.json" {
            self.package_json = Some(PackageJson::parse(text).expect("test package.json"));
        } else {
            self.texts.insert(path.to_string(), text.to_string());
        }
        self
    }

    /// Reads the top two levels of `root`, skipping `node_modules` and
    /// `.git`. Symlinks are left out: a link to a file outside the checkout
    /// must not be read on the build host.
    pub fn scan(root: &Path) -> Result<Tree, DetectError> {
        let mut tree = Tree::default();
        let mut stack = vec![(root.to_path_buf(), String::new(), 0usize)];
        while let Some((abs, rel, depth)) = stack.pop() {
            for entry in std::fs::read_dir(&abs)? {
                let entry = entry?;
                if tree.paths.len() >= SCAN_MAX_ENTRIES {
                    break;
                }
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if name == "node_modules" || name == ".git" {
                    continue;
                }
                let ft = entry.file_type()?;
                let path = format!("{rel}{name}");
                if ft.is_dir() {
                    tree.paths.insert(format!("{path}/"));
                    if depth + 1 < SCAN_DEPTH {
                        stack.push((entry.path(), format!("{path}/"), depth + 1));
                    }
                } else if ft.is_file() {
                    let small = entry.metadata()?.len() <= MAX_TEXT_BYTES;
                    if small && path == "package.json" {
                        let text = std::fs::read_to_string(entry.path())?;
                        tree.package_json = Some(PackageJson::parse(&text)?);
                    } else if small && READ_TEXTS.contains(&path.as_str()) {
                        let bytes = std::fs::read(entry.path())?;
                        tree.texts
                            .insert(path.clone(), String::from_utf8_lossy(&bytes).into_owned());
                    }
                    tree.paths.insert(path);
                }
            }
        }
        Ok(tree)
    }

    pub fn has(&self, path: &str) -> bool {
        self.paths.contains(path)
    }

    fn first_of<'a>(&self, paths: &[&'a str]) -> Option<&'a str> {
        paths.iter().copied().find(|p| self.has(p))
    }

    fn text(&self, path: &str) -> &str {
        self.texts.get(path).map_or("", String::as_str)
    }
}

const LOCKFILES: &[(&str, PackageManager)] = &[
    ("pnpm-lock.yaml", PackageManager::Pnpm),
    ("bun.lock", PackageManager::Bun),
    ("bun.lockb", PackageManager::Bun),
    ("yarn.lock", PackageManager::Yarn),
    ("package-lock.json", PackageManager::Npm),
    ("npm-shrinkwrap.json", PackageManager::Npm),
];

/// (manager, lockfile, why)
fn package_manager(tree: &Tree, pkg: &PackageJson) -> (PackageManager, Option<String>, String) {
    if let Some((lock, pm)) = LOCKFILES.iter().find(|(l, _)| tree.has(l)) {
        return (*pm, Some(lock.to_string()), lock.to_string());
    }
    if let Some(field) = &pkg.package_manager {
        let name = field.split('@').next().unwrap_or_default();
        if let Some(pm) = [
            PackageManager::Npm,
            PackageManager::Pnpm,
            PackageManager::Yarn,
            PackageManager::Bun,
        ]
        .into_iter()
        .find(|pm| pm.name() == name)
        {
            return (pm, None, format!("packageManager is {field}; no lockfile"));
        }
    }
    (PackageManager::Npm, None, "no lockfile".to_string())
}

fn install_command(pm: PackageManager, lockfile: Option<&str>, yarn_berry: bool) -> String {
    match (pm, lockfile.is_some()) {
        (PackageManager::Npm, true) => "npm ci".into(),
        (PackageManager::Npm, false) => "npm install".into(),
        (PackageManager::Pnpm, true) => "pnpm install --frozen-lockfile".into(),
        (PackageManager::Yarn, true) if yarn_berry => "yarn install --immutable".into(),
        (PackageManager::Yarn, true) => "yarn install --frozen-lockfile".into(),
        (PackageManager::Bun, true) => "bun install --frozen-lockfile".into(),
        (pm, false) => format!("{pm} install"),
    }
}

/// A Node framework: (framework, dependency that marks it, binary and
/// arguments when there is no script, script to prefer, output folder).
struct NodeKind {
    framework: Framework,
    dep: &'static str,
    exec: &'static str,
    script: &'static str,
    output: &'static str,
}

/// Most specific first: Astro, SvelteKit and Nuxt depend on Vite too.
const NODE_KINDS: &[NodeKind] = &[
    NodeKind {
        framework: Framework::NextStatic,
        dep: "next",
        exec: "next build",
        script: "build",
        output: "out",
    },
    NodeKind {
        framework: Framework::NuxtGenerate,
        dep: "nuxt",
        exec: "nuxi generate",
        script: "generate",
        output: ".output/public",
    },
    NodeKind {
        framework: Framework::Gatsby,
        dep: "gatsby",
        exec: "gatsby build",
        script: "build",
        output: "public",
    },
    NodeKind {
        framework: Framework::Docusaurus,
        dep: "@docusaurus/core",
        exec: "docusaurus build",
        script: "build",
        output: "build",
    },
    NodeKind {
        framework: Framework::Astro,
        dep: "astro",
        exec: "astro build",
        script: "build",
        output: "dist",
    },
    NodeKind {
        framework: Framework::SvelteKitStatic,
        dep: "@sveltejs/kit",
        exec: "vite build",
        script: "build",
        output: "build",
    },
    NodeKind {
        framework: Framework::Eleventy,
        dep: "@11ty/eleventy",
        exec: "eleventy",
        script: "build",
        output: "_site",
    },
    NodeKind {
        framework: Framework::Vite,
        dep: "vite",
        exec: "vite build",
        script: "build",
        output: "dist",
    },
];

/// The detection before user overrides.
struct Plan {
    framework: Framework,
    pm: Option<(PackageManager, Option<String>, String)>,
    install: Option<String>,
    build: Option<String>,
    output: String,
    reasons: Vec<String>,
    install_tools: Vec<&'static str>,
    build_tools: Vec<&'static str>,
}

fn plan_node(tree: &Tree, pkg: &PackageJson) -> Option<Plan> {
    let (pm, lock, why) = package_manager(tree, pkg);
    let mut reasons = Vec::new();
    let kind = NODE_KINDS.iter().find(|k| pkg.deps.contains(k.dep));
    let (framework, build, output) = match kind {
        Some(k) => {
            reasons.push(format!("package.json depends on {}", k.dep));
            let build = if pkg.scripts.contains_key(k.script) {
                format!("{pm} run {}", k.script)
            } else {
                format!("{} {}", pm.exec(), k.exec)
            };
            (k.framework, build, k.output.to_string())
        }
        None if pkg.scripts.contains_key("build") => {
            reasons.push("package.json has a build script and no framework we know".into());
            reasons.push("output folder guessed as dist".into());
            (
                Framework::NodeScripts,
                format!("{pm} run build"),
                "dist".to_string(),
            )
        }
        None => return None,
    };
    match framework {
        Framework::Vite => {
            if let Some(cfg) = tree.first_of(&[
                "vite.config.ts",
                "vite.config.js",
                "vite.config.mjs",
                "vite.config.mts",
            ]) {
                reasons.push(format!("{cfg} present"));
            }
        }
        Framework::NextStatic => {
            let cfg = tree.first_of(&["next.config.mjs", "next.config.js", "next.config.ts"]);
            match cfg {
                Some(c) if sets_static_export(tree.text(c)) => {
                    reasons.push(format!("{c} sets output: 'export'"))
                }
                _ => reasons.push(
                    "no output: 'export' in next.config — only a static export can be served"
                        .into(),
                ),
            }
        }
        Framework::SvelteKitStatic => {
            if pkg.deps.contains("@sveltejs/adapter-static") {
                reasons.push("uses @sveltejs/adapter-static".into());
            } else {
                reasons.push(
                    "without @sveltejs/adapter-static SvelteKit writes no static site".into(),
                );
            }
        }
        _ => {}
    }
    let (install, install_tools) = if pkg.deps.is_empty() {
        reasons.push("package.json has no dependencies, so nothing to install".into());
        (None, Vec::new())
    } else {
        let berry = tree.has(".yarnrc.yml");
        (
            Some(install_command(pm, lock.as_deref(), berry)),
            pm.tools().to_vec(),
        )
    };
    Some(Plan {
        framework,
        pm: Some((pm, lock, why)),
        install,
        build: Some(build),
        output,
        reasons,
        install_tools,
        build_tools: pm.tools().to_vec(),
    })
}

/// `output: 'export'` in any quoting; `module.exports` alone is not it.
fn sets_static_export(config: &str) -> bool {
    config.contains("output")
        && ["'export'", "\"export\"", "`export`"]
            .iter()
            .any(|q| config.contains(q))
}

fn plan_tool(
    framework: Framework,
    tool: &'static str,
    build: &str,
    output: &str,
    why: String,
) -> Plan {
    Plan {
        framework,
        pm: None,
        install: None,
        build: Some(build.to_string()),
        output: output.to_string(),
        reasons: vec![why],
        install_tools: Vec::new(),
        build_tools: vec![tool],
    }
}

fn plan_static(output: &str, why: String) -> Plan {
    Plan {
        framework: Framework::Static,
        pm: None,
        install: None,
        build: None,
        output: output.to_string(),
        reasons: vec![why],
        install_tools: Vec::new(),
        build_tools: Vec::new(),
    }
}

fn has_content_dirs(tree: &Tree, dirs: &[&str]) -> Option<String> {
    let found: Vec<&str> = dirs.iter().copied().filter(|d| tree.has(d)).collect();
    (!found.is_empty()).then(|| found.join(", "))
}

fn plan_site_generator(tree: &Tree) -> Option<Plan> {
    if let Some(cfg) = tree.first_of(&["hugo.toml", "hugo.yaml", "hugo.json"]) {
        return Some(plan_tool(
            Framework::Hugo,
            "hugo",
            "hugo --minify",
            "public",
            format!("{cfg} present"),
        ));
    }
    if tree.has("zola.toml") {
        return Some(plan_tool(
            Framework::Zola,
            "zola",
            "zola build",
            "public",
            "zola.toml present".into(),
        ));
    }
    for cfg in ["config.toml", "config.yaml"] {
        let text = tree.text(cfg);
        // Hugo spells the key baseURL; Zola base_url.
        if text.contains("base_url") && cfg == "config.toml" {
            if let Some(dirs) = has_content_dirs(tree, &["templates/", "content/", "sass/"]) {
                return Some(plan_tool(
                    Framework::Zola,
                    "zola",
                    "zola build",
                    "public",
                    format!("config.toml sets base_url; {dirs} present"),
                ));
            }
        }
        if text.to_ascii_lowercase().contains("baseurl") {
            if let Some(dirs) =
                has_content_dirs(tree, &["content/", "layouts/", "themes/", "archetypes/"])
            {
                return Some(plan_tool(
                    Framework::Hugo,
                    "hugo",
                    "hugo --minify",
                    "public",
                    format!("{cfg} sets baseURL; {dirs} present"),
                ));
            }
        }
    }
    if let Some(cfg) = tree.first_of(&["mkdocs.yml", "mkdocs.yaml"]) {
        return Some(plan_tool(
            Framework::MkDocs,
            "mkdocs",
            "mkdocs build",
            "site",
            format!("{cfg} present"),
        ));
    }
    None
}

/// How to build the tree, with `settings` overriding what was detected.
pub fn detect(tree: &Tree, settings: &ProjectSettings) -> Result<Detected, DetectError> {
    let plan = tree
        .package_json
        .as_ref()
        .and_then(|pkg| plan_node(tree, pkg))
        .or_else(|| plan_site_generator(tree))
        .or_else(|| {
            if tree.has("index.html") {
                Some(plan_static(".", "index.html at the root".into()))
            } else if tree.has("public/index.html") {
                Some(plan_static("public", "public/index.html present".into()))
            } else {
                None
            }
        });
    let mut plan = match plan {
        Some(p) => p,
        None if settings.build_command.is_some() => Plan {
            framework: Framework::Custom,
            pm: None,
            install: None,
            build: None,
            output: "dist".into(),
            reasons: vec!["build command from the project's settings".into()],
            install_tools: Vec::new(),
            build_tools: Vec::new(),
        },
        None => return Err(DetectError::Nothing),
    };
    let nonempty = |c: &String| (!c.trim().is_empty()).then(|| c.clone());
    if let Some(cmd) = &settings.install_command {
        plan.install = nonempty(cmd);
        plan.install_tools.clear();
        plan.reasons
            .push("install command from the project's settings".into());
    }
    if let Some(cmd) = &settings.build_command {
        plan.build = nonempty(cmd);
        plan.build_tools.clear();
        if plan.framework != Framework::Custom {
            plan.reasons
                .push("build command from the project's settings".into());
        }
    }
    if let Some(out) = &settings.output_dir {
        plan.output = out.clone();
        plan.reasons
            .push("output folder from the project's settings".into());
    }
    let mut tools: Vec<&'static str> = Vec::new();
    for t in plan.install_tools.iter().chain(&plan.build_tools) {
        if !tools.contains(t) {
            tools.push(t);
        }
    }
    let (package_manager, lockfile, pm_reason) = match plan.pm {
        Some((pm, lock, why)) => (Some(pm), lock, Some(why)),
        None => (None, None, None),
    };
    Ok(Detected {
        framework: plan.framework,
        package_manager,
        lockfile,
        install_command: plan.install,
        build_command: plan.build,
        output_dir: plan.output,
        reasons: plan.reasons,
        package_manager_reason: pm_reason,
        tools_needed: tools,
    })
}

/// The first of `tools` that is not an executable file in any of `dirs`.
pub fn missing_tool<'a>(tools: &[&'a str], dirs: &[&Path]) -> Option<&'a str> {
    use std::os::unix::fs::PermissionsExt;
    tools.iter().copied().find(|tool| {
        !dirs.iter().any(|d| {
            std::fs::metadata(d.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(deps: &[&str], scripts: &[&str]) -> String {
        let deps: Vec<String> = deps.iter().map(|d| format!("\"{d}\": \"1\"")).collect();
        let scripts: Vec<String> = scripts
            .iter()
            .map(|s| format!("\"{s}\": \"x {s}\""))
            .collect();
        format!(
            "{{\"name\": \"t\", \"devDependencies\": {{{}}}, \"scripts\": {{{}}}}}",
            deps.join(","),
            scripts.join(",")
        )
    }

    struct Row {
        name: &'static str,
        tree: Tree,
        framework: Framework,
        install: Option<&'static str>,
        build: Option<&'static str>,
        output: &'static str,
        reason: &'static str,
        tools: &'static [&'static str],
    }

    fn rows() -> Vec<Row> {
        let node = |deps: &[&str], scripts: &[&str], extra: &[&'static str]| {
            let mut paths = vec!["package-lock.json", "src/main.js"];
            paths.extend_from_slice(extra);
            Tree::from_paths(paths).with_text("package.json", &pkg(deps, scripts))
        };
        vec![
            Row {
                name: "plain static",
                tree: Tree::from_paths(["index.html", "style.css"]),
                framework: Framework::Static,
                install: None,
                build: None,
                output: ".",
                reason: "index.html at the root",
                tools: &[],
            },
            Row {
                name: "static public/",
                tree: Tree::from_paths(["public/index.html", "README.md"]),
                framework: Framework::Static,
                install: None,
                build: None,
                output: "public",
                reason: "public/index.html",
                tools: &[],
            },
            Row {
                name: "vite",
                tree: node(&["vite"], &["build"], &["vite.config.ts", "index.html"]),
                framework: Framework::Vite,
                install: Some("npm ci"),
                build: Some("npm run build"),
                output: "dist",
                reason: "vite.config.ts present",
                tools: &["node", "npm"],
            },
            Row {
                name: "astro",
                tree: node(&["astro", "vite"], &["build"], &["astro.config.mjs"]),
                framework: Framework::Astro,
                install: Some("npm ci"),
                build: Some("npm run build"),
                output: "dist",
                reason: "depends on astro",
                tools: &["node", "npm"],
            },
            Row {
                name: "next static export",
                tree: node(&["next", "react"], &["build"], &[])
                    .with_text("next.config.mjs", "export default { output: 'export' }"),
                framework: Framework::NextStatic,
                install: Some("npm ci"),
                build: Some("npm run build"),
                output: "out",
                reason: "next.config.mjs sets output",
                tools: &["node", "npm"],
            },
            Row {
                name: "sveltekit static",
                tree: node(
                    &["@sveltejs/kit", "@sveltejs/adapter-static", "vite"],
                    &["build"],
                    &["svelte.config.js"],
                ),
                framework: Framework::SvelteKitStatic,
                install: Some("npm ci"),
                build: Some("npm run build"),
                output: "build",
                reason: "adapter-static",
                tools: &["node", "npm"],
            },
            Row {
                name: "nuxt generate",
                tree: node(&["nuxt"], &["build", "generate"], &["nuxt.config.ts"]),
                framework: Framework::NuxtGenerate,
                install: Some("npm ci"),
                build: Some("npm run generate"),
                output: ".output/public",
                reason: "depends on nuxt",
                tools: &["node", "npm"],
            },
            Row {
                name: "gatsby",
                tree: node(&["gatsby", "react"], &["build"], &["gatsby-config.js"]),
                framework: Framework::Gatsby,
                install: Some("npm ci"),
                build: Some("npm run build"),
                output: "public",
                reason: "depends on gatsby",
                tools: &["node", "npm"],
            },
            Row {
                name: "docusaurus",
                tree: node(&["@docusaurus/core"], &["build"], &["docusaurus.config.js"]),
                framework: Framework::Docusaurus,
                install: Some("npm ci"),
                build: Some("npm run build"),
                output: "build",
                reason: "@docusaurus/core",
                tools: &["node", "npm"],
            },
            Row {
                name: "eleventy without a build script",
                tree: node(&["@11ty/eleventy"], &[], &[".eleventy.js"]),
                framework: Framework::Eleventy,
                install: Some("npm ci"),
                build: Some("npx --no-install eleventy"),
                output: "_site",
                reason: "@11ty/eleventy",
                tools: &["node", "npm"],
            },
            Row {
                name: "hugo.toml",
                tree: Tree::from_paths(["hugo.toml", "content/_index.md"]),
                framework: Framework::Hugo,
                install: None,
                build: Some("hugo --minify"),
                output: "public",
                reason: "hugo.toml present",
                tools: &["hugo"],
            },
            Row {
                name: "hugo config.toml",
                tree: Tree::from_paths(["content/post.md", "layouts/index.html"])
                    .with_text("config.toml", "baseURL = 'https://x/'\n"),
                framework: Framework::Hugo,
                install: None,
                build: Some("hugo --minify"),
                output: "public",
                reason: "sets baseURL",
                tools: &["hugo"],
            },
            Row {
                name: "zola",
                tree: Tree::from_paths(["templates/index.html", "content/_index.md"])
                    .with_text("config.toml", "base_url = \"https://x\"\n"),
                framework: Framework::Zola,
                install: None,
                build: Some("zola build"),
                output: "public",
                reason: "sets base_url",
                tools: &["zola"],
            },
            Row {
                name: "mkdocs",
                tree: Tree::from_paths(["mkdocs.yml", "docs/index.md"]),
                framework: Framework::MkDocs,
                install: None,
                build: Some("mkdocs build"),
                output: "site",
                reason: "mkdocs.yml present",
                tools: &["mkdocs"],
            },
            Row {
                name: "node scripts, no dependencies",
                tree: Tree::from_paths(["build.js"])
                    .with_text("package.json", &pkg(&[], &["build"])),
                framework: Framework::NodeScripts,
                install: None,
                build: Some("npm run build"),
                output: "dist",
                reason: "nothing to install",
                tools: &["node", "npm"],
            },
        ]
    }

    #[test]
    fn every_framework_is_detected() {
        for row in rows() {
            let d = detect(&row.tree, &ProjectSettings::default())
                .unwrap_or_else(|e| panic!("{}: {e}", row.name));
            assert_eq!(d.framework, row.framework, "{}", row.name);
            assert_eq!(d.install_command.as_deref(), row.install, "{}", row.name);
            assert_eq!(d.build_command.as_deref(), row.build, "{}", row.name);
            assert_eq!(d.output_dir, row.output, "{}", row.name);
            assert_eq!(d.tools_needed, row.tools, "{}", row.name);
            let summary = d.summary();
            assert!(summary.contains(row.reason), "{}: {summary}", row.name);
        }
    }

    /// (lockfile, another path, packageManager field, manager, install)
    type LockRow = (
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        PackageManager,
        &'static str,
    );

    #[test]
    fn lockfile_decides_the_package_manager() {
        let rows: &[LockRow] = &[
            (
                Some("package-lock.json"),
                None,
                None,
                PackageManager::Npm,
                "npm ci",
            ),
            (
                Some("npm-shrinkwrap.json"),
                None,
                None,
                PackageManager::Npm,
                "npm ci",
            ),
            (
                Some("pnpm-lock.yaml"),
                None,
                None,
                PackageManager::Pnpm,
                "pnpm install --frozen-lockfile",
            ),
            (
                Some("yarn.lock"),
                None,
                None,
                PackageManager::Yarn,
                "yarn install --frozen-lockfile",
            ),
            (
                Some("yarn.lock"),
                Some(".yarnrc.yml"),
                None,
                PackageManager::Yarn,
                "yarn install --immutable",
            ),
            (
                Some("bun.lockb"),
                None,
                None,
                PackageManager::Bun,
                "bun install --frozen-lockfile",
            ),
            (
                Some("bun.lock"),
                None,
                None,
                PackageManager::Bun,
                "bun install --frozen-lockfile",
            ),
            (
                None,
                None,
                Some("pnpm@9.1.0"),
                PackageManager::Pnpm,
                "pnpm install",
            ),
            (None, None, None, PackageManager::Npm, "npm install"),
        ];
        for (lock, extra, field, pm, install) in rows {
            let mut paths: Vec<&str> = lock.iter().chain(extra.iter()).copied().collect();
            paths.push("vite.config.js");
            let field = field.map_or(String::new(), |f| format!(", \"packageManager\": \"{f}\""));
            let json = format!(
                "{{\"dependencies\": {{\"vite\": \"5\"}}, \"scripts\": {{\"build\": \"vite build\"}}{field}}}"
            );
            let tree = Tree::from_paths(paths).with_text("package.json", &json);
            let d = detect(&tree, &ProjectSettings::default()).unwrap();
            assert_eq!(d.package_manager, Some(*pm), "{lock:?}");
            assert_eq!(d.install_command.as_deref(), Some(*install), "{lock:?}");
            assert_eq!(d.build_command, Some(format!("{pm} run build")), "{lock:?}");
            assert_eq!(d.lockfile.as_deref(), *lock);
            assert_eq!(d.tools_needed, pm.tools(), "{lock:?}");
            assert!(d.summary().contains(&format!("package manager {pm}")));
        }
    }

    #[test]
    fn settings_override_detection() {
        let tree = Tree::from_paths(["package-lock.json"])
            .with_text("package.json", &pkg(&["vite"], &["build"]));
        let settings = ProjectSettings {
            root_dir: None,
            install_command: Some(String::new()),
            build_command: Some("make site".into()),
            output_dir: Some("site".into()),
        };
        let d = detect(&tree, &settings).unwrap();
        assert_eq!(d.framework, Framework::Vite);
        assert_eq!(d.install_command, None);
        assert_eq!(d.build_command.as_deref(), Some("make site"));
        assert_eq!(d.output_dir, "site");
        assert!(d.tools_needed.is_empty());

        let empty = Tree::from_paths(["README.md"]);
        assert!(matches!(
            detect(&empty, &ProjectSettings::default()),
            Err(DetectError::Nothing)
        ));
        let d = detect(&empty, &settings).unwrap();
        assert_eq!(d.framework, Framework::Custom);
        assert_eq!(d.build_command.as_deref(), Some("make site"));
    }

    #[test]
    fn next_without_export_is_flagged() {
        let tree = Tree::from_paths(["package-lock.json"])
            .with_text("package.json", &pkg(&["next"], &["build"]))
            .with_text("next.config.js", "module.exports = {}");
        let d = detect(&tree, &ProjectSettings::default()).unwrap();
        assert!(
            d.summary().contains("only a static export"),
            "{}",
            d.summary()
        );
    }

    #[test]
    fn scan_reads_two_levels_and_skips_links_and_node_modules() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("public/deep/er")).unwrap();
        std::fs::create_dir_all(d.join("node_modules/vite")).unwrap();
        std::fs::write(d.join("public/index.html"), "x").unwrap();
        std::fs::write(d.join("public/deep/er/x.html"), "x").unwrap();
        std::fs::write(d.join("package.json"), pkg(&["vite"], &["build"])).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.join("config.toml")).unwrap();
        let tree = Tree::scan(d).unwrap();
        assert!(tree.has("public/index.html"));
        assert!(tree.has("public/deep/"));
        assert!(!tree.has("public/deep/er/"));
        assert!(!tree.has("node_modules/"));
        assert!(!tree.has("config.toml"));
        assert!(tree.texts.is_empty());
        assert!(tree.package_json.unwrap().deps.contains("vite"));

        std::fs::write(d.join("package.json"), "{").unwrap();
        assert!(matches!(Tree::scan(d), Err(DetectError::PackageJson(_))));
    }

    #[test]
    fn missing_tools_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path();
        std::fs::write(bin.join("present"), "#!/bin/sh\n").unwrap();
        std::fs::write(bin.join("not-exec"), "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("present"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        assert_eq!(missing_tool(&["present"], &[bin]), None);
        assert_eq!(
            missing_tool(&["present", "not-exec"], &[bin]),
            Some("not-exec")
        );
        assert_eq!(missing_tool(&["absent"], &[bin]), Some("absent"));
    }

    #[test]
    fn hashed_asset_folders_are_declared_immutable() {
        use protocol::routing::{HeaderRule, RoutingConfig};
        let mut r = RoutingConfig::default();
        add_immutable_rule(Framework::Vite, &mut r);
        assert_eq!(r.headers.len(), 1);
        assert_eq!(r.headers[0].source, "/assets/*");
        assert!(r.headers[0].headers[0].1.contains("immutable"));
        r.validate().expect("the added rule is valid");

        let mut plain = RoutingConfig::default();
        add_immutable_rule(Framework::Static, &mut plain);
        assert!(plain.headers.is_empty(), "no guess for plain sites");

        let mut own = RoutingConfig::default();
        own.headers.push(HeaderRule {
            source: "/assets/*".into(),
            headers: vec![("cache-control".into(), "no-store".into())],
        });
        add_immutable_rule(Framework::Astro, &mut own);
        assert_eq!(own.headers.len(), 1, "the project's own policy wins");
    }
}
