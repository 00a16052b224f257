//! Accounts and rooms over HTTP, before a scenario starts.

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// A logged-in bench user.
#[derive(Debug, Clone)]
pub struct BenchUser {
    pub id: String,
    pub token: String,
}

/// How to reach the target: iyagi (full HTTP API) or the bare relay (no accounts).
#[derive(Debug, Clone)]
pub struct Target {
    pub http: String,
    pub ws: String,
    pub relay: bool,
}

impl Target {
    pub fn new(addr: &str, relay: bool) -> Target {
        Target {
            http: format!("http://{addr}"),
            ws: format!("ws://{addr}/v1/ws"),
            relay,
        }
    }

    pub fn name(&self) -> &'static str {
        if self.relay { "relay" } else { "iyagi" }
    }
}

/// See [`Setup::writer_totals`].
#[derive(Debug, Clone, Copy)]
pub struct WriterTotals {
    pub commits: f64,
    pub appends: f64,
    pub busy_seconds: f64,
}

impl WriterTotals {
    /// Messages per group commit and milliseconds per commit between two
    /// readings.
    pub fn per_commit(before: WriterTotals, after: WriterTotals) -> Option<(f64, f64)> {
        let commits = after.commits - before.commits;
        (commits > 0.0).then(|| {
            (
                (after.appends - before.appends) / commits,
                (after.busy_seconds - before.busy_seconds) * 1e3 / commits,
            )
        })
    }
}

pub struct Setup {
    http: reqwest::Client,
    target: Target,
    run: String,
}

impl Setup {
    pub fn new(target: &Target) -> Setup {
        // A per-run tag keeps usernames unique across runs on one database.
        let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        Setup {
            http: reqwest::Client::new(),
            target: target.clone(),
            run,
        }
    }

    /// The message writer's running totals from iyagi's `/metrics`
    /// (`None` for the relay, or when they cannot be read).
    pub async fn writer_totals(&self) -> Option<WriterTotals> {
        if self.target.relay {
            return None;
        }
        let text = self.metrics_text().await?;
        let value = |name: &str| figure(&text, name);
        Some(WriterTotals {
            commits: value("iyagi_store_append_commits")?,
            appends: value("iyagi_store_appends")?,
            busy_seconds: value("iyagi_store_append_busy_seconds")?,
        })
    }

    /// Registers and logs in `count` users (in parallel batches).
    pub async fn users(&self, count: usize) -> anyhow::Result<Vec<BenchUser>> {
        if self.target.relay {
            return Ok((0..count)
                .map(|i| BenchUser {
                    id: format!("relay-user-{i}"),
                    token: String::new(),
                })
                .collect());
        }
        let mut users = Vec::with_capacity(count);
        for chunk in (0..count).collect::<Vec<_>>().chunks(64) {
            let batch = chunk
                .iter()
                .map(|i| self.user(format!("b{}_{i}", self.run)));
            for user in futures::future::join_all(batch).await {
                users.push(user?);
            }
        }
        Ok(users)
    }

    async fn user(&self, name: String) -> anyhow::Result<BenchUser> {
        let base = &self.target.http;
        let body = json!({"username": name, "password": "bench-password"});
        let registered = self
            .http
            .post(format!("{base}/v1/auth/register"))
            .json(&body)
            .send()
            .await?;
        if !registered.status().is_success() {
            bail!(
                "register {name}: {}",
                registered.text().await.unwrap_or_default()
            );
        }
        let login = json!({"username": name, "password": "bench-password", "device": {"id": "bench", "platform": "other"}});
        let tokens: Value = self
            .http
            .post(format!("{base}/v1/auth/login"))
            .json(&login)
            .send()
            .await?
            .json()
            .await?;
        Ok(BenchUser {
            id: tokens["user_id"]
                .as_str()
                .context("login user_id")?
                .to_owned(),
            token: tokens["access_token"]
                .as_str()
                .context("login access_token")?
                .to_owned(),
        })
    }

    /// iyagi's `/metrics` as text.
    async fn metrics_text(&self) -> Option<String> {
        let response = self
            .http
            .get(format!("{}/metrics", self.target.http))
            .send()
            .await
            .ok()?;
        response.text().await.ok()
    }

    /// One unlabelled figure from iyagi's `/metrics`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        figure(&self.metrics_text().await?, name)
    }

    /// Registers the user's device for FCM with `token`.
    pub async fn register_fcm(&self, user: &BenchUser, token: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .put(format!("{}/v1/push/registrations/fcm", self.target.http))
            .bearer_auth(&user.token)
            .json(&json!({ "token": token }))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "push registration: {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Uploads `bytes` as `kind` media; the server's `MediaView`.
    pub async fn upload_media(
        &self,
        user: &BenchUser,
        kind: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<serde_json::Value> {
        let response = self
            .http
            .post(format!("{}/v1/media?kind={kind}", self.target.http))
            .bearer_auth(&user.token)
            .body(bytes)
            .send()
            .await?;
        if response.status() != reqwest::StatusCode::CREATED {
            bail!("upload: {}", response.text().await.unwrap_or_default());
        }
        Ok(response.json().await?)
    }

    /// The fake FCM's accepted pushes: `(room_id, seq, arrived unix ms)`.
    pub async fn fake_fcm_accepted(&self, fake: &str) -> anyhow::Result<Vec<(String, i64, u64)>> {
        let stats: Value = self
            .http
            .get(format!("http://{fake}/stats"))
            .send()
            .await?
            .json()
            .await?;
        let accepted = stats["accepted"].as_array().context("stats")?;
        Ok(accepted
            .iter()
            .filter_map(|a| {
                Some((
                    a[0].as_str()?.to_owned(),
                    a[1].as_str()?.parse().ok()?,
                    a[2].as_u64()?,
                ))
            })
            .collect())
    }

    pub async fn direct_room(&self, a: &BenchUser, b: &BenchUser) -> anyhow::Result<String> {
        if self.target.relay {
            return Ok(uuid::Uuid::new_v4().to_string());
        }
        let room: Value = self
            .http
            .post(format!("{}/v1/rooms/direct", self.target.http))
            .bearer_auth(&a.token)
            .json(&json!({"user_id": b.id}))
            .send()
            .await?
            .json()
            .await?;
        Ok(room["id"].as_str().context("room id")?.to_owned())
    }

    pub async fn group_room(
        &self,
        owner: &BenchUser,
        members: &[BenchUser],
    ) -> anyhow::Result<String> {
        if self.target.relay {
            return Ok(uuid::Uuid::new_v4().to_string());
        }
        let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        let room: Value = self
            .http
            .post(format!("{}/v1/rooms", self.target.http))
            .bearer_auth(&owner.token)
            .json(&json!({"title": "bench", "members": ids}))
            .send()
            .await?
            .json()
            .await?;
        Ok(room["id"]
            .as_str()
            .with_context(|| format!("group room: {room}"))?
            .to_owned())
    }
}

/// An unlabelled sample's value in Prometheus text.
fn figure(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))?
        .trim()
        .parse()
        .ok()
}
