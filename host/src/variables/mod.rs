//! Application and component variables, and the `fermyon:spin/variables@2.0.0` binding.
//!
//! Application variables (`[variables]`) take their value from an override (the
//! embedder's, e.g. `SPIN_VARIABLE_*`) or else their default; a `required` variable
//! without an override is a start-up error. Component variables
//! (`[component.X.variables]`) are templates over application variables, e.g.
//! `"http://localhost:{{ web_ui_port }}"`; they are all rendered once at start-up,
//! because every value source here is static, so a request never fails on a
//! missing variable.

pub(crate) mod capability;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use wasmtime::component::{HasSelf, Linker};

use crate::manifest::{check_variable_name, VariableDecl};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spin-host:host/variables",
    });
}

use bindings::fermyon::spin::variables as wit;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

/// A parsed component variable template: literal text and `{{ name }}` references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parse `text`. `{{` opens a reference, which must close with `}}` and hold a
    /// valid variable name (surrounding spaces allowed).
    pub fn parse(text: &str) -> Result<Template> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| anyhow!("unclosed `{{{{` in template `{text}`"))?;
            let name = after[..end].trim();
            check_variable_name(name).map_err(|e| anyhow!("in template `{text}`: {e}"))?;
            parts.push(Part::Variable(name.to_string()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The application variables referenced, in order.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(v) => Some(v.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Render with `lookup`; fails on the first reference `lookup` cannot resolve.
    pub fn render(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Variable(v) => {
                    out.push_str(&lookup(v).ok_or_else(|| anyhow!("variable `{v}` has no value"))?)
                }
            }
        }
        Ok(out)
    }
}

/// Resolved application variables: each declared variable with its value.
#[derive(Debug, Clone)]
pub struct AppVariables {
    values: BTreeMap<String, String>,
}

impl AppVariables {
    /// Resolve declarations against `overrides` (keys are matched case-insensitively,
    /// so `WEB_UI_PORT` sets `web_ui_port`). Overrides of undeclared names are
    /// ignored. Fails, naming the variable, if a required one has no override.
    pub fn resolve(
        decls: &BTreeMap<String, VariableDecl>,
        overrides: &HashMap<String, String>,
    ) -> Result<AppVariables> {
        let overrides: HashMap<String, &String> = overrides
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let mut values = BTreeMap::new();
        for (name, decl) in decls {
            let value = match (overrides.get(name), &decl.default) {
                (Some(v), _) => (*v).clone(),
                (None, Some(d)) => d.clone(),
                (None, None) => bail!(
                    "required variable `{name}` has no value (set it with SPIN_VARIABLE_{})",
                    name.to_ascii_uppercase()
                ),
            };
            values.insert(name.clone(), value);
        }
        Ok(AppVariables { values })
    }

    /// The value of application variable `name`, if declared.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Render a component's variables. Fails naming the component variable if a
    /// template is malformed or refers to an undeclared application variable.
    pub fn component_values(
        &self,
        component_id: &str,
        templates: &BTreeMap<String, String>,
    ) -> Result<ComponentVariables> {
        let mut out = HashMap::new();
        for (name, text) in templates {
            let context = || format!("component `{component_id}` variable `{name}`");
            let template = Template::parse(text).map_err(|e| anyhow!("{}: {e}", context()))?;
            for r in template.references() {
                if !self.values.contains_key(r) {
                    bail!("{}: refers to undeclared variable `{r}`", context());
                }
            }
            let value = template
                .render(|v| self.get(v).map(str::to_string))
                .map_err(|e| anyhow!("{}: {e}", context()))?;
            out.insert(name.clone(), value);
        }
        Ok(ComponentVariables {
            values: Arc::new(out),
        })
    }
}

/// One component's rendered variables; also the per-instance state of the
/// `fermyon:spin/variables` binding. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ComponentVariables {
    values: Arc<HashMap<String, String>>,
}

impl ComponentVariables {
    /// The value of component variable `name`, if the component defines it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

impl wit::Host for ComponentVariables {
    fn get(&mut self, name: String) -> Result<String, wit::Error> {
        if check_variable_name(&name).is_err() {
            return Err(wit::Error::InvalidName(name));
        }
        ComponentVariables::get(self, &name)
            .map(str::to_string)
            .ok_or(wit::Error::Undefined(format!("no variable for \"{name}\"")))
    }
}

/// Add `fermyon:spin/variables@2.0.0` to `linker`; `get` projects the store data to
/// the instance's [`ComponentVariables`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ComponentVariables,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<ComponentVariables>>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decls() -> BTreeMap<String, VariableDecl> {
        let mut d = BTreeMap::new();
        d.insert(
            "web_ui_port".to_string(),
            VariableDecl {
                default: Some("5173".into()),
                required: false,
                secret: false,
            },
        );
        d.insert(
            "api_token".to_string(),
            VariableDecl {
                default: None,
                required: true,
                secret: true,
            },
        );
        d
    }

    #[test]
    fn templates_parse_and_render() {
        let t = Template::parse("http://localhost:{{ web_ui_port }}/x{{a}}").unwrap();
        assert_eq!(t.references().collect::<Vec<_>>(), vec!["web_ui_port", "a"]);
        let s = t
            .render(|v| Some(if v == "a" { "A".into() } else { "1".into() }))
            .unwrap();
        assert_eq!(s, "http://localhost:1/xA");
        assert_eq!(
            Template::parse("plain").unwrap().render(|_| None).unwrap(),
            "plain"
        );
        assert!(Template::parse("{{ open").is_err());
        assert!(Template::parse("{{ Bad }}").is_err());
        assert!(Template::parse("{{}}").is_err());
    }

    #[test]
    fn overrides_win_and_required_must_be_set() {
        let mut o = HashMap::new();
        let e = AppVariables::resolve(&decls(), &o).unwrap_err().to_string();
        assert!(e.contains("api_token"), "{e}");
        o.insert("API_TOKEN".to_string(), "s3cret".to_string());
        o.insert("unrelated".to_string(), "x".to_string());
        let v = AppVariables::resolve(&decls(), &o).unwrap();
        assert_eq!(v.get("api_token"), Some("s3cret"));
        assert_eq!(v.get("web_ui_port"), Some("5173"));
        assert_eq!(v.get("unrelated"), None);
        o.insert("web_ui_port".to_string(), "8080".to_string());
        let v = AppVariables::resolve(&decls(), &o).unwrap();
        assert_eq!(v.get("web_ui_port"), Some("8080"));
    }

    #[test]
    fn component_values_and_binding() {
        let mut o = HashMap::new();
        o.insert("api_token".to_string(), "t".to_string());
        let app = AppVariables::resolve(&decls(), &o).unwrap();
        let mut templates = BTreeMap::new();
        templates.insert(
            "cors_origin".to_string(),
            "http://localhost:{{ web_ui_port }}".to_string(),
        );
        templates.insert("literal".to_string(), "x".to_string());
        let mut c = app.component_values("api", &templates).unwrap();
        assert_eq!(c.get("cors_origin"), Some("http://localhost:5173"));
        assert_eq!(wit::Host::get(&mut c, "literal".into()).unwrap(), "x");
        assert!(matches!(
            wit::Host::get(&mut c, "Bad-Name".to_string()),
            Err(wit::Error::InvalidName(_))
        ));
        assert!(matches!(
            wit::Host::get(&mut c, "missing".to_string()),
            Err(wit::Error::Undefined(_))
        ));

        templates.insert("broken".to_string(), "{{ nope }}".to_string());
        let e = app
            .component_values("api", &templates)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("component `api` variable `broken`") && e.contains("nope"),
            "{e}"
        );
    }
}
