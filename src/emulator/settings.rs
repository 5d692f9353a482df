//! Selling-system settings: GetSellingSystemSettings and PutSellingSystemSettings over
//! [`State`] (the IAM role that resource snapshot jobs run as).
//!
//! Rules enforced here:
//! - Settings are per account and catalog: one account's (or catalog's) Put is never seen by
//!   another's Get.
//! - `ResourceSnapshotJobRoleIdentifier` is a role name or a role ARN (the model's pattern);
//!   a name is stored as the ARN of that role in the caller's account
//!   (`arn:aws:iam::<caller>:role/<name>`), so Get and Put always answer
//!   `ResourceSnapshotJobRoleArn` as an ARN. An ARN of a role in another account is a
//!   `ValidationException` (`INVALID_VALUE` at `ResourceSnapshotJobRoleIdentifier`): the jobs
//!   run in the caller's account.
//! - A Put without `ResourceSnapshotJobRoleIdentifier` changes nothing and answers the current
//!   settings (the member is optional; the emulator does not take its absence as "clear").
//! - A Get before any Put answers only `Catalog` (no role is set).

use super::error::ApiError;
use super::ops::{s, Ctx};
use super::state::State;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The settings of every account and catalog.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Settings {
    /// Key: `account \u{1f} catalog`; value: the role ARN.
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
}

fn key(account: &str, catalog: &str) -> String {
    format!("{account}\u{1f}{catalog}")
}

fn answer(catalog: &str, role: Option<&String>) -> Value {
    let mut out = json!({ "Catalog": catalog });
    if let Some(r) = role {
        out["ResourceSnapshotJobRoleArn"] = r.clone().into();
    }
    out
}

/// The role ARN an identifier (role name or role ARN) stands for, in `account`.
fn role_arn(account: &str, identifier: &str) -> Result<String, ApiError> {
    let Some(rest) = identifier.strip_prefix("arn:aws:iam::") else {
        return Ok(format!("arn:aws:iam::{account}:role/{identifier}"));
    };
    let owner = rest.split(':').next().unwrap_or("");
    if owner != account {
        return Err(ApiError::business(
            "ResourceSnapshotJobRoleIdentifier",
            "INVALID_VALUE",
            format!(
                "The role belongs to account {owner}, not to the calling account {account}: \
                 resource snapshot jobs run as a role of your own account (give its name or ARN)"
            ),
        ));
    }
    Ok(identifier.to_string())
}

pub(super) fn get_settings(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog");
    Ok(answer(
        catalog,
        state.settings.roles.get(&key(ctx.account, catalog)),
    ))
}

pub(super) fn put_settings(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog");
    let k = key(ctx.account, catalog);
    if let Some(id) = body
        .get("ResourceSnapshotJobRoleIdentifier")
        .and_then(Value::as_str)
    {
        let arn = role_arn(ctx.account, id)?;
        state.settings.roles.insert(k.clone(), arn);
    }
    Ok(answer(catalog, state.settings.roles.get(&k)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_name_becomes_an_arn_in_the_callers_account() {
        assert_eq!(
            role_arn("111111111111", "SnapRole").unwrap(),
            "arn:aws:iam::111111111111:role/SnapRole"
        );
        let arn = "arn:aws:iam::111111111111:role/team/SnapRole";
        assert_eq!(role_arn("111111111111", arn).unwrap(), arn);
        let e = role_arn("222222222222", arn).unwrap_err();
        assert_eq!(e.shape, "ValidationException");
    }
}
