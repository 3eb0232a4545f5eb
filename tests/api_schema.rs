//! The REST API against its document, driven by the document: for every operation in
//! `docs/openapi.json`, requests made from its schemas — valid ones, and ones that break one
//! documented bound (a pattern, a maximum, an unknown field, a wrong type) — are sent to a
//! real node. Every answer must have a documented status and a body that validates against
//! the documented schema; requests that break a bound must be refused (4xx); nothing may
//! answer 5xx. A property test: each case is random, shrunk on failure.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

/// A subset of JSON Schema (2020-12, as OpenAPI 3.1 uses it): what `docs/openapi.json` uses.
/// Returns the first violation.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return validate(doc, &doc["components"]["schemas"][name], v, at);
    }
    let fail = |why: String| Err(format!("{at}: {why} (value {v})"));
    for sub in schema["allOf"].as_array().into_iter().flatten() {
        validate(doc, sub, v, at)?;
    }
    if let Some(cond) = schema.get("if")
        && validate(doc, cond, v, at).is_ok()
        && let Some(then) = schema.get("then")
    {
        validate(doc, then, v, at)?;
    }
    if let Some(c) = schema.get("const")
        && c != v
    {
        return fail(format!("not {c}"));
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "string" => v.is_string(),
            "integer" => v.is_u64() || v.is_i64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            return fail(format!("not of type {t}"));
        }
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(v)
    {
        return fail("not one of the enum".into());
    }
    if let Some(s) = v.as_str() {
        if let Some(p) = schema["pattern"].as_str()
            && !regex::Regex::new(p).unwrap().is_match(s)
        {
            return fail(format!("does not match {p}"));
        }
        if let Some(n) = schema["maxLength"].as_u64()
            && s.chars().count() as u64 > n
        {
            return fail(format!("longer than {n}"));
        }
    }
    if let Some(n) = v.as_u64() {
        if schema["minimum"].as_u64().is_some_and(|m| n < m) {
            return fail("below the minimum".into());
        }
        if schema["maximum"].as_u64().is_some_and(|m| n > m) {
            return fail("above the maximum".into());
        }
    }
    if let Some(a) = v.as_array() {
        if schema["maxItems"]
            .as_u64()
            .is_some_and(|m| a.len() as u64 > m)
        {
            return fail("too many items".into());
        }
        if schema["minItems"]
            .as_u64()
            .is_some_and(|m| (a.len() as u64) < m)
        {
            return fail("too few items".into());
        }
        if let Some(items) = schema.get("items") {
            for (i, x) in a.iter().enumerate() {
                validate(doc, items, x, &format!("{at}[{i}]"))?;
            }
        }
    }
    if let Some(o) = v.as_object() {
        if schema["maxProperties"]
            .as_u64()
            .is_some_and(|m| o.len() as u64 > m)
        {
            return fail("too many properties".into());
        }
        for r in schema["required"].as_array().into_iter().flatten() {
            if !o.contains_key(r.as_str().unwrap()) {
                return fail(format!("lacks {r}"));
            }
        }
        let props = schema["properties"].as_object();
        for (k, x) in o {
            if let Some(names) = schema.get("propertyNames") {
                validate(doc, names, &json!(k), &format!("{at} key {k}"))?;
            }
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(doc, s, x, &format!("{at}.{k}"))?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => return fail(format!("has {k}, not in the schema")),
                    Some(s @ Value::Object(_)) => validate(doc, s, x, &format!("{at}.{k}"))?,
                    _ => {}
                },
            }
        }
    }
    Ok(())
}

/// What a request's part should be: valid, or breaking its schema in one way.
#[derive(Debug, Clone)]
enum Part {
    Valid,
    /// Break the schema: a value outside a bound, of another type, or an unknown field.
    Broken(u8),
}

/// A value for `schema` (with `doc` resolving references), valid or broken as `part` says.
/// `pick` supplies known-good values (ids the node holds) for patterned strings.
fn value_for(
    doc: &Value,
    schema: &Value,
    part: &Part,
    seed: u64,
    pick: &dyn Fn(&str) -> Option<String>,
) -> BoxedStrategy<Value> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return value_for(doc, &doc["components"]["schemas"][name], part, seed, pick);
    }
    let ty = match &schema["type"] {
        Value::String(s) => s.clone(),
        Value::Array(a) => a[0].as_str().unwrap().to_string(),
        _ => "object".into(),
    };
    let broken = matches!(part, Part::Broken(_));
    let kind = match part {
        Part::Broken(k) => *k,
        Part::Valid => 0,
    };
    match ty.as_str() {
        "string" => {
            let pattern = schema["pattern"].as_str().map(String::from);
            if broken {
                // Each of these breaks the schema: another type, and whatever breaks its
                // pattern, enum or length.
                let mut options = vec![json!(12345)];
                if let Some(p) = &pattern {
                    let re = regex::Regex::new(p).unwrap();
                    let misses = ["Z".repeat(70), " 00".into(), "  ".into()];
                    options.extend(
                        misses
                            .into_iter()
                            .filter(|m| !re.is_match(m))
                            .map(Value::from),
                    );
                }
                if schema.get("enum").is_some() {
                    options.push(json!("not-one-of-them"));
                }
                if let Some(n) = schema["maxLength"].as_u64() {
                    options.push(json!("a".repeat(n as usize + 1)));
                }
                return proptest::sample::select(options).boxed();
            }
            match pattern {
                Some(p) => {
                    let known = pick(&p);
                    // The generator matches whole strings already; it takes no anchors.
                    let body = p.trim_start_matches('^').trim_end_matches('$');
                    let generated = proptest::string::string_regex(body)
                        .unwrap()
                        .prop_map(Value::from);
                    match known {
                        Some(k) if seed.is_multiple_of(2) => Just(Value::from(k)).boxed(),
                        _ => generated.boxed(),
                    }
                }
                None => {
                    let max = schema["maxLength"].as_u64().unwrap_or(64).min(64) as usize;
                    proptest::string::string_regex(&format!(".{{0,{max}}}"))
                        .unwrap()
                        .prop_map(Value::from)
                        .boxed()
                }
            }
        }
        "integer" => {
            let min = schema["minimum"].as_u64().unwrap_or(0);
            let max = schema["maximum"].as_u64().unwrap_or(u64::MAX);
            if broken {
                let mut options: Vec<Value> = vec![json!("ten"), json!(-1), json!(1.5)];
                if max < u64::MAX {
                    options.push(json!(max + 1));
                }
                if min > 0 {
                    options.push(json!(min - 1));
                }
                return proptest::sample::select(options).boxed();
            }
            (min..=max.min(min + 10_000)).prop_map(Value::from).boxed()
        }
        "array" => {
            let items = schema["items"].clone();
            let min = schema["minItems"].as_u64().unwrap_or(0) as usize;
            if broken && kind % 2 == 0 {
                return Just(json!({"not": "an array"})).boxed();
            }
            let item = value_for(doc, &items, part, seed, pick);
            proptest::collection::vec(item, min..=min.max(3))
                .prop_map(Value::from)
                .boxed()
        }
        "object" => {
            let props = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let required: Vec<String> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r.as_str().unwrap().to_string())
                .collect();
            let names: Vec<String> = props.keys().cloned().collect();
            let victim = if names.is_empty() {
                0
            } else {
                seed as usize % names.len()
            };
            let mut fields: Vec<BoxedStrategy<(String, Option<Value>)>> = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let breaks_this = broken && kind % 3 == 1 && i == victim;
                let p = if breaks_this {
                    part.clone()
                } else {
                    Part::Valid
                };
                let s = value_for(doc, &props[name], &p, seed, pick);
                let n = name.clone();
                if required.contains(name) || breaks_this {
                    fields.push(s.prop_map(move |v| (n.clone(), Some(v))).boxed());
                } else {
                    fields.push(
                        proptest::option::of(s)
                            .prop_map(move |v| (n.clone(), v))
                            .boxed(),
                    );
                }
            }
            let extra = broken && kind % 3 == 0 && schema["additionalProperties"] == json!(false);
            let drop_required = broken && kind % 3 == 2 && !required.is_empty();
            let first_required = required.first().cloned();
            fields
                .prop_map(move |kv| {
                    let mut o = serde_json::Map::new();
                    for (k, v) in kv.into_iter() {
                        if let Some(v) = v {
                            o.insert(k, v);
                        }
                    }
                    if extra {
                        o.insert("unexpected_field".into(), json!(1));
                    }
                    if drop_required && let Some(r) = &first_required {
                        o.remove(r);
                    }
                    Value::Object(o)
                })
                .boxed()
        }
        "boolean" => any::<bool>().prop_map(Value::from).boxed(),
        _ => Just(Value::Null).boxed(),
    }
}

#[test]
fn every_operation_answers_as_documented() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{REPO}/docs/openapi.json")).unwrap(),
    )
    .unwrap();
    let w = World::new();
    let mut net = Net::without_dht(&w);
    // Broken records are forgeries to the node, which would ban this client: trusted here,
    // since what is tested is the document (tests/hostile.rs tests the bans).
    let node = net.add("node1", "[limits]\ntrusted = 127.0.0.1\n").clone();
    let status = net.status(&node).unwrap();
    let addr = status["addr"].as_str().unwrap().to_string();
    let opening = w.at(&node, &["--json", "history"]).ok().json()["entries"][0]["record"]
        .as_str()
        .unwrap()
        .to_string();
    let record: Value = reqwest::blocking::get(format!("http://{addr}/v1/records/{opening}"))
        .unwrap()
        .json()
        .unwrap();
    let node_id = node.id.clone();
    let pick = move |pattern: &str| -> Option<String> {
        match pattern {
            "^[0-9a-f]{64}$" => Some(if opening.len() == 64 {
                node_id.clone()
            } else {
                opening.clone()
            }),
            "^[0-9a-f]{2}$" => Some(node_id[..2].to_string()),
            _ => None,
        }
    };
    let http = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();

    let mut checked = 0usize;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let params: Vec<Value> = op["parameters"].as_array().cloned().unwrap_or_default();
            let body_schema = op["requestBody"]["content"]["application/json"]["schema"].clone();
            let documented: Vec<String> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            // Cases: which part (if any) is broken, and how.
            let parts = params.len() + usize::from(!body_schema.is_null());
            let strategy = (0..=parts, any::<u8>(), any::<u64>()).prop_flat_map({
                let (doc, params, body_schema) = (doc.clone(), params.clone(), body_schema.clone());
                let pick = pick.clone();
                move |(broken_part, how, seed)| {
                    let mut strategies: Vec<BoxedStrategy<Value>> = Vec::new();
                    for (i, p) in params.iter().enumerate() {
                        let part = if broken_part == i + 1 {
                            Part::Broken(how)
                        } else {
                            Part::Valid
                        };
                        strategies.push(value_for(&doc, &p["schema"], &part, seed, &pick));
                    }
                    if !body_schema.is_null() {
                        let part = if broken_part == params.len() + 1 {
                            Part::Broken(how)
                        } else {
                            Part::Valid
                        };
                        strategies.push(value_for(&doc, &body_schema, &part, seed, &pick));
                    }
                    (Just(broken_part), strategies)
                }
            });
            let mut runner = TestRunner::new(Config {
                cases: 24,
                failure_persistence: None,
                ..Config::default()
            });
            let result = runner.run(&strategy, |(broken, values)| {
                let mut url_path = path.clone();
                let mut query = Vec::new();
                for (p, v) in params.iter().zip(&values) {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let name = p["name"].as_str().unwrap();
                    if p["in"] == "path" {
                        let enc: String =
                            url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
                        url_path =
                            url_path.replace(&format!("{{{name}}}"), &enc.replace('+', "%20"));
                    } else {
                        query.push((name.to_string(), text));
                    }
                }
                let url = format!("http://{addr}{url_path}");
                let req = match method.as_str() {
                    "get" => http.get(&url),
                    _ => {
                        let mut body = values.last().cloned().unwrap_or(Value::Null);
                        // A record the node holds, where one is wanted whole.
                        if path == "/v1/records" && broken == 0 && body["records"].is_array() {
                            body = json!({"records": [record.clone()]});
                        }
                        http.post(&url).json(&body)
                    }
                };
                let resp = req
                    .query(&query)
                    .send()
                    .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                let status = resp.status().as_u16();
                let text = resp.text().unwrap_or_default();
                let what = format!(
                    "{} {url_path} {query:?} (part {broken} broken): {status} {text}",
                    method.to_uppercase()
                );
                prop_assert!(status < 500, "a 5xx: {what}");
                prop_assert!(
                    documented.contains(&status.to_string()),
                    "undocumented status: {what}"
                );
                let body: Value = serde_json::from_str(&text)
                    .map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {what}")))?;
                let schema = op["responses"][status.to_string()].clone();
                let schema = match schema["$ref"].as_str() {
                    Some(_) => json!({"$ref": "#/components/schemas/Error"}),
                    None => schema["content"]["application/json"]["schema"].clone(),
                };
                if !schema.is_null() {
                    validate(&doc, &schema, &body, "answer")
                        .map_err(|e| TestCaseError::fail(format!("{e}: {what}")))?;
                }
                if path == "/v1/records" && broken > 0 && status == 200 {
                    // A broken record inside a well-formed submission is refused on its own.
                    let all_refused = body
                        .as_array()
                        .is_some_and(|a| a.iter().all(|r| r["status"] == "refused"));
                    prop_assert!(all_refused, "a broken record was taken: {what}");
                } else if path == "/v1/stem" && broken > 0 && status == 200 {
                    // (A broken part that generated no record at all: nothing to take.)
                    prop_assert_eq!(
                        &body["taken"],
                        &json!(0),
                        "a broken record was taken: {}",
                        what
                    );
                } else if broken > 0 {
                    prop_assert!(
                        (400..500).contains(&status),
                        "a broken request was not refused: {what}"
                    );
                }
                Ok(())
            });
            if let Err(e) = result {
                let log = std::fs::read_to_string(node.dir.join("node.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                panic!(
                    "{} {path}: {e}\nthe node's log ends:\n{}",
                    method.to_uppercase(),
                    tail.join("\n")
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, cod::api::ROUTES.len(), "every route was exercised");

    // Near misses of the document's patterns are refused, in JSON like every refusal...
    for near_miss in [
        "/v1/sync/heads/+f",
        "/v1/sync/heads/0F",
        "/v1/log?from=%2B5",
        "/v1/log?limit=0",
        "/v1/log?from=%FF",
        "/v1/records/%FF",
        "/v1/chains/%FF%FE",
    ] {
        let resp = http
            .get(format!("http://{addr}{near_miss}"))
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().unwrap_or(Value::Null);
        assert_eq!(status, 400, "{near_miss}: {body}");
        let error = json!({"$ref": "#/components/schemas/Error"});
        validate(&doc, &error, &body, near_miss).unwrap();
    }
    // ...and what it allows at its bounds is taken: a stem's `from` of 128 characters of two
    // bytes each.
    let stem = json!({"records": [], "from": "é".repeat(128)});
    let resp = http
        .post(format!("http://{addr}/v1/stem"))
        .json(&stem)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().unwrap());
    drop(net);
}

#[test]
fn the_validator_refuses_what_it_should() {
    let doc = json!({"components": {"schemas": {"X": {"type": "object", "required": ["a"], "additionalProperties": false,
        "properties": {"a": {"type": "string", "pattern": "^[0-9a-f]{2}$"}, "n": {"type": ["integer", "null"], "maximum": 5}}}}}});
    let x = json!({"$ref": "#/components/schemas/X"});
    assert!(validate(&doc, &x, &json!({"a": "0f"}), "v").is_ok());
    assert!(validate(&doc, &x, &json!({"a": "0f", "n": null}), "v").is_ok());
    for bad in [
        json!({}),
        json!({"a": "0F"}),
        json!({"a": "0f", "b": 1}),
        json!({"a": "0f", "n": 6}),
        json!([1]),
    ] {
        assert!(validate(&doc, &x, &bad, "v").is_err(), "{bad}");
    }
}

/// Every bound the document states is the constant the server enforces (so neither can
/// change alone), and the limits its description states in prose are the server's too.
#[test]
fn the_documents_bounds_are_the_servers() {
    use cod::ledger::record as r;
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{REPO}/docs/openapi.json")).unwrap(),
    )
    .unwrap();
    let at = |ptr: &str| -> u64 {
        let s = format!("/components/schemas/{ptr}");
        let v = doc.pointer(&s).or_else(|| doc.pointer(ptr));
        v.and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("docs/openapi.json has no number at {ptr}"))
    };
    let bounds: &[(&str, usize)] = &[
        (
            "Submit/properties/records/maxItems",
            cod::api::MAX_RECORDS_PER_CALL,
        ),
        (
            "Records/properties/records/maxItems",
            cod::api::MAX_RECORDS_PER_PAGE,
        ),
        (
            "OpenRequests/properties/records/maxItems",
            cod::api::MAX_OPEN_REQUESTS_SERVED,
        ),
        (
            "Stem/properties/records/maxItems",
            cod::stem::MAX_PER_MESSAGE,
        ),
        ("Stem/properties/from/maxLength", cod::stem::MAX_FROM_CHARS),
        ("Record/properties/sigs/maxItems", r::MAX_SIGS),
        (
            "Record/properties/version/const",
            r::RECORD_VERSION as usize,
        ),
        (
            "Rejection/properties/reason/maxLength",
            cod::signature_requests::MAX_REASON_BYTES,
        ),
        ("TransferContent/properties/claims/maxItems", r::MAX_CLAIMS),
        (
            "TransferContent/properties/memo/maxLength",
            r::MAX_MEMO_BYTES,
        ),
        (
            "TransferContent/properties/outputs/maxItems",
            r::MAX_OUTPUTS,
        ),
        (
            "TransferContent/properties/redeem/maxProperties",
            r::MAX_REDEEM_ITEMS,
        ),
        ("TransferContent/properties/vouch/maxItems", r::MAX_VOUCHES),
        (
            "DistributeContent/properties/payouts/maxItems",
            r::MAX_PAYOUTS,
        ),
        (
            "DistributeContent/properties/handover/properties/version/maxLength",
            r::MAX_VERSION_BYTES,
        ),
        ("SignersContent/properties/keys/maxItems", r::MAX_SIGS),
        (
            "MembersContent/properties/admit/maxItems",
            r::MAX_MEMBERS_CHANGED,
        ),
        (
            "MembersContent/properties/remove/maxItems",
            r::MAX_MEMBERS_CHANGED,
        ),
        (
            "/paths/~1v1~1log/get/parameters/1/schema/maximum",
            cod::api::MAX_RECORDS_PER_PAGE,
        ),
        (
            "/paths/~1v1~1log/get/parameters/1/schema/default",
            cod::api::MAX_RECORDS_PER_PAGE,
        ),
        (
            "/paths/~1v1~1chains~1{account}/get/parameters/2/schema/maximum",
            cod::api::MAX_RECORDS_PER_PAGE,
        ),
        (
            "/paths/~1v1~1chains~1{account}/get/parameters/2/schema/default",
            cod::api::MAX_RECORDS_PER_PAGE,
        ),
    ];
    for (ptr, bound) in bounds {
        assert_eq!(at(ptr), *bound as u64, "docs/openapi.json {ptr}");
    }
    for (name, field) in doc["components"]["schemas"]["Info"]["properties"]
        .as_object()
        .unwrap()
    {
        if let Some(n) = field["maxLength"].as_u64() {
            assert_eq!(n, cod::api::MAX_INFO_FIELD as u64, "Info.{name}");
        }
    }
    let limits = cod::config::node::Limits::default();
    let description = doc["info"]["description"].as_str().unwrap();
    for said in [
        format!("{} records per submission", cod::api::MAX_RECORDS_PER_CALL),
        format!("{} per page", cod::api::MAX_RECORDS_PER_PAGE),
        format!("bodies at most {} MiB", cod::api::MAX_BODY_BYTES >> 20),
        format!("{} s per request", cod::api::REQUEST_TIMEOUT_SECS),
        format!("At most {} connections", limits.connections),
        format!("{} connections and", limits.connections_per_address),
        format!("{} requests a second", limits.requests_per_second),
        format!("a burst of {}", limits.request_burst),
        format!(
            "{} MiB per address and {} MiB in all",
            limits.body_bytes_per_address >> 20,
            limits.body_bytes >> 20
        ),
        format!(
            "a forged record {}",
            cod::node::guard::Offense::Forged.points()
        ),
        format!("violation {}", cod::node::guard::Offense::Protocol.points()),
        format!("one point every {} s", cod::node::guard::DECAY_MS / 1000),
        format!(
            "reaching {} is banned for an hour",
            cod::node::guard::BAN_SCORE
        ),
    ] {
        assert!(description.contains(&said), "the description says {said:?}");
    }
    assert_eq!(cod::node::guard::BAN_MS, 3_600_000, "an hour");
}
