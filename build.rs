//! Generates the MCP tool contract from `schemas/` (see README, "Generated protocol code").
//!
//! Three outputs, all in `OUT_DIR` only (never the source tree, never the network):
//! - `tool_types.rs`: Rust types for every tool's input and output, made by `typify` from the
//!   JSON Schema files, so the code cannot disagree with the contract a client sees.
//! - `tool_catalog.rs`: the catalogue (name, title, description, annotations, capability) with
//!   each schema bundled into one self-contained JSON document: every `$ref` is inlined, because
//!   several MCP clients still mishandle `$ref`/`$defs` in tool schemas.
//! - `tool_calls.rs`: `ToolCall`, one variant per tool carrying its input type, so the MCP
//!   adapter matches on it exhaustively and a tool without a handler does not compile.
//!
//! A capability is written as the domain's `Capability` variant (`"read"` → `Capability::Read`):
//! a tool needing a capability the domain doesn't have does not compile either.

use std::{collections::BTreeMap, env, fs, path::Path};

use serde_json::{Map, Value};

fn main() {
    println!("cargo::rerun-if-changed=schemas");
    let out_dir = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let common = read_json("schemas/common.json");
    let common_defs = common
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let catalog = read_json("schemas/tools.json");
    let tools = catalog["tools"]
        .as_array()
        .expect("tools.json: tools is an array");

    // typify sees draft-07 style `definitions`; every type is a named definition.
    let mut definitions: BTreeMap<String, Value> = common_defs
        .iter()
        .map(|(name, schema)| (name.clone(), to_definitions_refs(schema)))
        .collect();
    let mut catalog_rs = String::from(
        "/// The tool catalogue generated from `schemas/tools.json`.\npub const TOOLS: &[ToolSpec] = &[\n",
    );
    let mut calls = Vec::new();
    for tool in tools {
        let name = tool["name"].as_str().expect("tool name");
        assert!(
            is_snake_case(name),
            "tools.json: tool {name:?} must be snake_case (verb_noun; it names a ToolCall variant)"
        );
        let capability = capability_variant(tool["capability"].as_str().expect("capability"));
        let mut bundled = Vec::new();
        for kind in ["input", "output"] {
            let path = format!("schemas/tools/{name}.{kind}.json");
            let schema = read_json(&path);
            let title = schema["title"]
                .as_str()
                .unwrap_or_else(|| panic!("{path}: needs a title (it names the Rust type)"))
                .to_owned();
            assert_eq!(schema["type"], "object", "{path}: MCP needs an object root");
            if kind == "input" {
                assert_eq!(
                    schema["additionalProperties"],
                    Value::Bool(false),
                    "{path}: inputs are strict (additionalProperties: false)"
                );
                calls.push(Call {
                    tool: name.to_owned(),
                    input: title.clone(),
                    capability: capability.clone(),
                });
            }
            definitions.insert(title, to_definitions_refs(&strip_meta(&schema)));
            let mut inlined = inline_refs(&schema, &common_defs);
            if let Some(obj) = inlined.as_object_mut() {
                obj.remove("$id");
            }
            let file = format!("{out_dir}/{name}.{kind}.json");
            fs::write(&file, serde_json::to_string(&inlined).expect("json")).expect("write schema");
            bundled.push(file);
        }
        catalog_rs.push_str(&format!(
            "    ToolSpec {{ name: {name:?}, title: {title:?}, description: {desc:?}, capability: Capability::{capability}, annotations: {ann:?}, input_schema: include_str!({input:?}), output_schema: include_str!({output:?}) }},\n",
            title = tool["title"].as_str().expect("title"),
            desc = tool["description"].as_str().expect("description"),
            ann = tool["annotations"].to_string(),
            input = bundled[0],
            output = bundled[1],
        ));
    }
    catalog_rs.push_str("];\n");
    fs::write(Path::new(&out_dir).join("tool_catalog.rs"), catalog_rs).expect("write catalog");
    fs::write(
        Path::new(&out_dir).join("tool_calls.rs"),
        tool_calls(&calls),
    )
    .expect("write calls");

    let mut settings = typify::TypeSpaceSettings::default();
    settings
        .with_struct_builder(false)
        .with_derive("PartialEq".to_owned());
    let mut space = typify::TypeSpace::new(&settings);
    let defs = definitions.into_iter().map(|(name, schema)| {
        let schema: schemars08::schema::Schema =
            serde_json::from_value(schema).unwrap_or_else(|e| panic!("schema {name}: {e}"));
        (name, schema)
    });
    space
        .add_ref_types(defs)
        .expect("typify accepts the schemas");
    let file: syn::File = syn::parse2(space.to_stream()).expect("typify emits valid Rust");
    fs::write(
        Path::new(&out_dir).join("tool_types.rs"),
        prettyplease::unparse(&file),
    )
    .expect("write types");
}

/// One tool as `ToolCall` sees it.
struct Call {
    tool: String,
    /// The input type's name (the input schema's title).
    input: String,
    /// The `Capability` variant it needs.
    capability: String,
}

/// `ToolCall`, its parsing constructor and its capability, as Rust source. The `match`es name
/// every tool (no catch-all arm), so adding one to `tools.json` reaches every `match` on
/// `ToolCall` in the adapter.
fn tool_calls(calls: &[Call]) -> String {
    let mut variants = String::new();
    let mut parse = String::new();
    let mut capability = String::new();
    for Call {
        tool,
        input,
        capability: cap,
    } in calls
    {
        let variant = pascal_case(tool);
        variants.push_str(&format!(
            "    /// `{tool}`.\n    {variant}(types::{input}),\n"
        ));
        parse.push_str(&format!(
            "            {tool:?} => decode(arguments).map(Self::{variant}),\n"
        ));
        capability.push_str(&format!(
            "            Self::{variant}(_) => Capability::{cap},\n"
        ));
    }
    format!(
        r#"/// One `tools/call`: the tool, with its arguments decoded into its input type.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolCall {{
{variants}}}

impl ToolCall {{
    /// Decodes a call of the tool `name` with `arguments`.
    ///
    /// # Errors
    /// [`ToolCallError::UnknownTool`] when no tool has that name,
    /// [`ToolCallError::Arguments`] when the arguments don't fit its input schema.
    pub fn parse(name: &str, arguments: serde_json::Value) -> Result<Self, ToolCallError> {{
        match name {{
{parse}            _ => Err(ToolCallError::UnknownTool(name.to_owned())),
        }}
    }}

    /// The capability a grant needs for this call.
    #[must_use]
    pub fn capability(&self) -> Capability {{
        match self {{
{capability}        }}
    }}
}}
"#
    )
}

/// `"read"` → `"Read"`: the domain's `Capability` variant a capability name stands for.
fn capability_variant(name: &str) -> String {
    assert!(
        is_snake_case(name),
        "tools.json: capability {name:?} must be snake_case (it names a Capability variant)"
    );
    pascal_case(name)
}

fn is_snake_case(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

fn read_json(path: &str) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Drops keywords typify does not need and would otherwise try to interpret.
fn strip_meta(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Some(obj) = schema.as_object_mut() {
        for key in ["$schema", "$id", "$defs", "$comment"] {
            obj.remove(key);
        }
    }
    schema
}

/// `common.json#/$defs/X` and `#/$defs/X` become `#/definitions/X` for typify.
fn to_definitions_refs(schema: &Value) -> Value {
    map_refs(schema, &mut |name| {
        Value::Object(Map::from_iter([(
            "$ref".to_owned(),
            Value::String(format!("#/definitions/{name}")),
        )]))
    })
}

/// Replaces every `$ref` with the referenced definition, recursively.
fn inline_refs(schema: &Value, defs: &Map<String, Value>) -> Value {
    map_refs(schema, &mut |name| {
        let target = defs
            .get(name)
            .unwrap_or_else(|| panic!("unknown $ref target {name}"));
        inline_refs(target, defs)
    })
}

fn map_refs(schema: &Value, replace: &mut dyn FnMut(&str) -> Value) -> Value {
    match schema {
        Value::Object(obj) => {
            if let Some(Value::String(reference)) = obj.get("$ref") {
                let name = reference
                    .rsplit_once("/$defs/")
                    .map(|(_, name)| name)
                    .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
                return replace(name);
            }
            Value::Object(
                obj.iter()
                    .map(|(k, v)| (k.clone(), map_refs(v, replace)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| map_refs(v, replace)).collect()),
        other => other.clone(),
    }
}
