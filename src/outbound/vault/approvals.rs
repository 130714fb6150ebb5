//! Send approvals in `approvals_v1` (approval id → JSON record). Each status change is a
//! compare-and-swap inside one write transaction: redb serialises writers, so two claims of
//! one approval cannot both succeed. Records hold no mail content in the clear: the review
//! copy is sealed under a key that only the review link carries.

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{RedbVault, db_err, records};
use crate::domain::{
    approval::{ApprovalError, ApprovalId, ApprovalRecord, ApprovalStore, DraftDigest, Status},
    grant::GrantId,
    ids::EmailId,
};

pub const APPROVALS: TableDefinition<&str, &[u8]> = TableDefinition::new("approvals_v1");

/// How long a settled approval is kept after it lapsed, for `get_send_status`.
const KEEP_AFTER_EXPIRY_SECS: i64 = 86_400;

#[derive(Serialize, Deserialize)]
struct Record {
    grant: String,
    account: String,
    draft: String,
    digest: String,
    status: String,
    created_at: i64,
    expires_at: i64,
    #[serde(with = "review_b64")]
    review: Vec<u8>,
    #[serde(default)]
    submission: Option<String>,
}

mod review_b64 {
    use base64::Engine as _;
    use serde::{Deserialize as _, Deserializer, Serializer};

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        B64.decode(text).map_err(serde::de::Error::custom)
    }
}

fn store_err(e: impl std::fmt::Display) -> ApprovalError {
    ApprovalError::Store(e.to_string())
}

fn to_record(a: &ApprovalRecord) -> Record {
    Record {
        grant: a.grant.as_str().to_owned(),
        account: a.account.clone(),
        draft: a.draft.as_str().to_owned(),
        digest: a.digest.hex(),
        status: a.status.as_str().to_owned(),
        created_at: a.created_at,
        expires_at: a.expires_at,
        review: a.review.clone(),
        submission: a.submission.clone(),
    }
}

fn from_record(id: &str, r: Record) -> Result<ApprovalRecord, ApprovalError> {
    let corrupt = |what: &str| ApprovalError::Store(format!("stored approval {what}"));
    Ok(ApprovalRecord {
        id: ApprovalId::parse(id).ok_or_else(|| corrupt("id"))?,
        grant: GrantId::new(r.grant),
        account: r.account,
        draft: EmailId::parse(r.draft).map_err(|_| corrupt("draft"))?,
        digest: DraftDigest(records::unhex(&r.digest).ok_or_else(|| corrupt("digest"))?),
        status: Status::parse(&r.status).ok_or_else(|| corrupt("status"))?,
        created_at: r.created_at,
        expires_at: r.expires_at,
        review: r.review,
        submission: r.submission,
    })
}

impl RedbVault {
    fn approvals_all(&self) -> Result<Vec<ApprovalRecord>, ApprovalError> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let table = match tx.open_table(APPROVALS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(store_err(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(store_err)? {
            let (k, v) = row.map_err(store_err)?;
            let record: Record = records::decode(v.value()).map_err(store_err)?;
            out.push(from_record(k.value(), record)?);
        }
        Ok(out)
    }
}

impl ApprovalStore for RedbVault {
    fn insert(&self, record: &ApprovalRecord) -> Result<(), ApprovalError> {
        let now = chrono::Utc::now().timestamp();
        let encoded = records::encode(&to_record(record)).map_err(store_err)?;
        let tx = self.db.begin_write().map_err(db_err).map_err(store_err)?;
        {
            let mut table = tx.open_table(APPROVALS).map_err(store_err)?;
            // In the same transaction as the insert: the older asks for this draft go, and
            // what lapsed long ago, but never a claimed one (a send in flight settles it).
            let mut stale = Vec::new();
            for row in table.iter().map_err(store_err)? {
                let (k, v) = row.map_err(store_err)?;
                let r: Record = records::decode(v.value()).map_err(store_err)?;
                let same_draft =
                    r.grant == record.grant.as_str() && r.draft == record.draft.as_str();
                let claimed = r.status == Status::Claimed.as_str();
                if (same_draft && !claimed) || now >= r.expires_at + KEEP_AFTER_EXPIRY_SECS {
                    stale.push(k.value().to_owned());
                }
            }
            for id in &stale {
                table.remove(id.as_str()).map_err(store_err)?;
            }
            table
                .insert(record.id.as_str(), encoded.as_slice())
                .map_err(store_err)?;
        }
        tx.commit().map_err(store_err)
    }

    fn get(&self, id: &ApprovalId) -> Result<Option<ApprovalRecord>, ApprovalError> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let table = match tx.open_table(APPROVALS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(store_err(e)),
        };
        match table.get(id.as_str()).map_err(store_err)? {
            Some(v) => {
                let record: Record = records::decode(v.value()).map_err(store_err)?;
                Ok(Some(from_record(id.as_str(), record)?))
            }
            None => Ok(None),
        }
    }

    fn find(
        &self,
        grant: &GrantId,
        draft: &EmailId,
    ) -> Result<Option<ApprovalRecord>, ApprovalError> {
        Ok(self
            .approvals_all()?
            .into_iter()
            .filter(|r| r.grant == *grant && r.draft == *draft)
            // A claim (a send in flight, or one whose outcome is unknown) blocks the draft
            // whatever was asked after it.
            .max_by_key(|r| (r.status == Status::Claimed, r.created_at)))
    }

    fn by_submission(
        &self,
        grant: &GrantId,
        submission: &str,
    ) -> Result<Option<ApprovalRecord>, ApprovalError> {
        Ok(self
            .approvals_all()?
            .into_iter()
            .find(|r| r.grant == *grant && r.submission.as_deref() == Some(submission)))
    }

    fn transition(
        &self,
        id: &ApprovalId,
        from: Status,
        to: Status,
        submission: Option<String>,
    ) -> Result<(), ApprovalError> {
        let tx = self.db.begin_write().map_err(store_err)?;
        {
            let mut table = tx.open_table(APPROVALS).map_err(store_err)?;
            let current: Option<Record> = table
                .get(id.as_str())
                .map_err(store_err)?
                .map(|v| records::decode(v.value()))
                .transpose()
                .map_err(store_err)?;
            let Some(mut record) = current.filter(|r| r.status == from.as_str()) else {
                return Err(ApprovalError::Conflict);
            };
            record.status = to.as_str().to_owned();
            // The review copy serves the decision only: gone once it is made.
            if to != Status::Pending {
                record.review.clear();
            }
            if submission.is_some() {
                record.submission = submission;
            }
            let encoded = records::encode(&record).map_err(store_err)?;
            table
                .insert(id.as_str(), encoded.as_slice())
                .map_err(store_err)?;
        }
        tx.commit().map_err(store_err)
    }

    fn remove(&self, id: &ApprovalId) -> Result<(), ApprovalError> {
        let tx = self.db.begin_write().map_err(store_err)?;
        {
            let mut table = tx.open_table(APPROVALS).map_err(store_err)?;
            // Checked in the removing transaction: a claim made meanwhile keeps its record.
            let claimed = table
                .get(id.as_str())
                .map_err(store_err)?
                .map(|v| records::decode::<Record>(v.value()))
                .transpose()
                .map_err(store_err)?
                .is_some_and(|r| r.status == Status::Claimed.as_str());
            if !claimed {
                table.remove(id.as_str()).map_err(store_err)?;
            }
        }
        tx.commit().map_err(store_err)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::approval::Approval;

    fn vault() -> (RedbVault, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("mc-approvals-{:x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        (RedbVault::open(&dir.join("v.redb")).unwrap(), dir)
    }

    fn ask(draft: &str, now: i64) -> Approval<crate::domain::approval::Pending> {
        Approval::ask(
            GrantId::new("g1"),
            "acct".into(),
            EmailId::parse(draft).unwrap(),
            DraftDigest([7; 32]),
            vec![1, 2, 3],
            now,
            600,
        )
    }

    #[test]
    fn records_round_trip_and_one_of_many_concurrent_claims_wins() {
        let (v, dir) = vault();
        let now = chrono::Utc::now().timestamp();
        let a = ask("M1", now);
        v.insert(a.record()).unwrap();
        assert_eq!(v.get(&a.record().id).unwrap().as_ref(), Some(a.record()));
        assert_eq!(
            v.find(&GrantId::new("g1"), &EmailId::parse("M1").unwrap())
                .unwrap()
                .as_ref(),
            Some(a.record())
        );
        let approved = a.approve(&v, now).unwrap();
        let stored = v.get(&approved.record().id).unwrap().unwrap();
        assert!(
            stored.review.is_empty(),
            "the review copy goes with the decision"
        );
        let v = Arc::new(v);
        let winners: usize = (0..8)
            .map(|_| {
                let (v, approved) = (Arc::clone(&v), approved.clone());
                std::thread::spawn(move || approved.claim(v.as_ref(), now).is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(winners, 1);
        // A new ask for the same draft replaces the old ones, but never a claimed one: a send
        // in flight settles it (and a stale read can't remove it either).
        let again = ask("M1", now + 1);
        v.insert(again.record()).unwrap();
        let found = v
            .find(&GrantId::new("g1"), &EmailId::parse("M1").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(found.status, Status::Claimed, "a claim blocks the draft");
        assert_eq!(v.approvals_all().unwrap().len(), 2);
        let claimed = approved.record().id.clone();
        v.remove(&claimed).unwrap();
        assert!(v.get(&claimed).unwrap().is_some(), "claimed: kept");
        v.transition(&claimed, Status::Claimed, Status::Sent, None)
            .unwrap();
        v.remove(&claimed).unwrap();
        assert!(v.get(&claimed).unwrap().is_none());
        let newer = ask("M1", now + 2);
        v.insert(newer.record()).unwrap();
        assert_eq!(
            v.approvals_all().unwrap().len(),
            1,
            "the older pending went"
        );
        drop(v);
        let _ = std::fs::remove_dir_all(dir);
    }
}
