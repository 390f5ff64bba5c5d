//! OpenAPI links: from what a create operation answers to the operations on what it created,
//! so that a client (or schemathesis's stateful phase) can chain a create with the reads,
//! updates, commands and deletes of the same resource.

use serde_json::{Map, Value, json};

/// One create operation's links: from its `status` answer to every operation of `to`, with
/// each path parameter taken from the request or the response by a runtime expression.
struct Links {
    from: &'static str,
    status: &'static str,
    to: &'static [&'static str],
    parameters: &'static [(&'static str, &'static str)],
}

const LINKS: &[Links] = &[
    Links {
        from: "createFlag",
        status: "201",
        to: &[
            "getFlag",
            "updateFlag",
            "killFlag",
            "restoreFlag",
            "archiveFlag",
            "unarchiveFlag",
            "abReport",
            "shadowReport",
            "deleteFlag",
        ],
        parameters: &[("key", "$request.path.key")],
    },
    Links {
        from: "startDryRun",
        status: "201",
        to: &["getDryRun", "applyDryRun", "stopDryRun"],
        parameters: &[("id", "$response.body#/id")],
    },
    Links {
        from: "createSegment",
        status: "201",
        to: &["getSegment", "updateSegment", "deleteSegment"],
        parameters: &[("name", "$request.path.name")],
    },
    Links {
        from: "createEnvironment",
        status: "201",
        to: &[
            "getEnvironment",
            "updateEnvironment",
            "getProtection",
            "deleteEnvironment",
        ],
        parameters: &[("name", "$request.path.name")],
    },
    Links {
        from: "createToken",
        status: "201",
        to: &["revokeToken"],
        parameters: &[("id", "$response.body#/id")],
    },
    Links {
        from: "createWebhook",
        status: "201",
        to: &["deleteWebhook"],
        parameters: &[("id", "$response.body#/id")],
    },
    Links {
        from: "createRollout",
        status: "201",
        to: &[
            "getRollout",
            "startRollout",
            "approveRollout",
            "pauseRollout",
            "resumeRollout",
            "promoteRollout",
            "rollbackRollout",
            "killRollout",
        ],
        parameters: &[("id", "$response.body#/id")],
    },
    Links {
        from: "createRelease",
        status: "201",
        to: &[
            "getRelease",
            "getReleaseChecklist",
            "addReleaseEvidence",
            "overrideReleaseChecklist",
            "startRelease",
            "drillRelease",
        ],
        parameters: &[("id", "$response.body#/id")],
    },
    Links {
        from: "createChangeRequest",
        status: "201",
        to: &[
            "getChangeRequest",
            "approveChangeRequest",
            "rejectChangeRequest",
            "applyChangeRequest",
        ],
        parameters: &[("id", "$response.body#/id")],
    },
    Links {
        from: "createApp",
        status: "201",
        to: &[
            "getApp",
            "appStatus",
            "listAppReleases",
            "createAppRelease",
            "reportSessions",
        ],
        parameters: &[("app", "$response.body#/key")],
    },
    Links {
        from: "createAppRelease",
        status: "201",
        to: &["getAppRelease", "appReleaseCommand"],
        parameters: &[
            ("app", "$response.body#/app"),
            ("channel", "$response.body#/channel"),
            ("version", "$response.body#/version"),
        ],
    },
    Links {
        from: "createAppRelease",
        status: "201",
        to: &["sparkleFeed", "tauriFeed"],
        parameters: &[
            ("app", "$response.body#/app"),
            ("channel", "$response.body#/channel"),
        ],
    },
    Links {
        from: "createAppRelease",
        status: "201",
        to: &["electronFeed"],
        parameters: &[("app", "$response.body#/app")],
    },
];

/// Adds the links to the create operations' responses in `paths`.
pub(super) fn add(paths: &mut Map<String, Value>) {
    for item in paths.values_mut() {
        let Value::Object(methods) = item else {
            continue;
        };
        for operation in methods.values_mut() {
            let Some(id) = operation.get("operationId").and_then(Value::as_str) else {
                continue;
            };
            let id = id.to_owned();
            for links in LINKS.iter().filter(|l| l.from == id) {
                let Some(Value::Object(answer)) = operation
                    .get_mut("responses")
                    .and_then(|r| r.get_mut(links.status))
                else {
                    continue;
                };
                let parameters: Map<String, Value> = links
                    .parameters
                    .iter()
                    .map(|(name, expression)| ((*name).to_owned(), json!(expression)))
                    .collect();
                let targets = answer
                    .entry("links")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(targets) = targets {
                    for target in links.to {
                        targets.insert(
                            (*target).to_owned(),
                            json!({ "operationId": target, "parameters": parameters }),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation of the document, by id: its path item and the operation.
    fn operations(document: &Value) -> Map<String, Value> {
        let mut found = Map::new();
        for item in document["paths"].as_object().unwrap().values() {
            for (method, operation) in item.as_object().unwrap() {
                if let Some(id) = operation.get("operationId").and_then(Value::as_str) {
                    assert_ne!(method, "parameters");
                    found.insert(id.to_owned(), json!({"item": item, "op": operation}));
                }
            }
        }
        found
    }

    /// The names of an operation's path parameters, from the path item and the operation.
    fn path_parameters(entry: &Value) -> Vec<String> {
        let mut names = Vec::new();
        for list in [&entry["item"]["parameters"], &entry["op"]["parameters"]] {
            for parameter in list.as_array().into_iter().flatten() {
                if parameter["in"] == "path" {
                    names.push(parameter["name"].as_str().unwrap().to_owned());
                }
            }
        }
        names
    }

    #[test]
    fn every_link_is_added_and_fills_every_path_parameter_of_its_target() {
        let document = super::super::document();
        let operations = operations(&document);
        let schemas = &document["components"]["schemas"];
        let mut added = 0;
        for links in LINKS {
            let source = &operations[links.from];
            let answer = &source["op"]["responses"][links.status];
            let declared = answer["links"]
                .as_object()
                .unwrap_or_else(|| panic!("{} {} has no links", links.from, links.status));
            let expected: usize = LINKS
                .iter()
                .filter(|l| l.from == links.from && l.status == links.status)
                .map(|l| l.to.len())
                .sum();
            assert_eq!(declared.len(), expected);
            let schema_name = answer["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/components/schemas/"));
            for target in links.to {
                let entry = operations
                    .get(*target)
                    .unwrap_or_else(|| panic!("{}: no operation {target}", links.from));
                let mut wanted = path_parameters(entry);
                wanted.sort();
                let mut given: Vec<String> = links
                    .parameters
                    .iter()
                    .map(|(n, _)| (*n).to_owned())
                    .collect();
                given.sort();
                let own: Vec<String> = given
                    .iter()
                    .filter(|name| wanted.contains(name))
                    .cloned()
                    .collect();
                assert_eq!(
                    own, given,
                    "{} → {target}: a parameter it does not take",
                    links.from
                );
                let missing: Vec<&String> =
                    wanted.iter().filter(|name| !given.contains(name)).collect();
                // What a create cannot know: a command, a feed's file name, a platform.
                let free = ["command", "file", "target", "arch", "current_version"];
                assert!(
                    missing.iter().all(|name| free.contains(&name.as_str())),
                    "{} → {target}: no value for {missing:?}",
                    links.from
                );
                added += 1;
            }
            for (name, expression) in links.parameters {
                if let Some(path) = expression.strip_prefix("$request.path.") {
                    assert!(path_parameters(source).iter().any(|p| p == path), "{name}");
                } else if let Some(property) = expression.strip_prefix("$response.body#/") {
                    let name =
                        schema_name.unwrap_or_else(|| panic!("{}: no schema to read", links.from));
                    let schema = &schemas[name];
                    let known = schema["properties"].get(property).is_some();
                    let described = schema["description"]
                        .as_str()
                        .is_some_and(|d| d.contains(property));
                    assert!(known || described, "{name} has no `{property}`");
                } else {
                    panic!("{}: unexpected expression {expression}", links.from);
                }
            }
        }
        assert!(added >= 40, "only {added} links");
    }
}
