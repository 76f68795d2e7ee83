//! PLACEHOLDER for the bollard adapter (owned by helper `docker`): same API, never connects.
//! The lead replaces this file with the real adapter at merge.

use std::time::Duration;

use async_trait::async_trait;

use crate::engine::{
    ContainerInfo, DiskUsage, Engine, EngineError, ExecOutput, LogLine, LogQuery, NetworkInfo,
    StatsSnapshot, VolumeInfo,
};

pub struct DockerEngine {
    project: String,
}

impl DockerEngine {
    pub async fn connect(_endpoint: Option<&str>, _project: &str) -> Result<Self, EngineError> {
        Err(EngineError::Unavailable("docker adapter not merged".into()))
    }

    pub fn project(&self) -> &str {
        &self.project
    }
}

fn never() -> EngineError {
    EngineError::Unavailable("docker adapter not merged".into())
}

#[async_trait]
impl Engine for DockerEngine {
    async fn containers(&self) -> Result<Vec<ContainerInfo>, EngineError> {
        Err(never())
    }
    async fn logs(&self, _: &str, _: &LogQuery) -> Result<Vec<LogLine>, EngineError> {
        Err(never())
    }
    async fn stats(&self, _: &str) -> Result<StatsSnapshot, EngineError> {
        Err(never())
    }
    async fn restart(&self, _: &str, _: Duration) -> Result<(), EngineError> {
        Err(never())
    }
    async fn stop(&self, _: &str, _: Duration) -> Result<(), EngineError> {
        Err(never())
    }
    async fn start(&self, _: &str) -> Result<(), EngineError> {
        Err(never())
    }
    async fn env(&self, _: &str) -> Result<Vec<(String, String)>, EngineError> {
        Err(never())
    }
    async fn volumes(&self) -> Result<Vec<VolumeInfo>, EngineError> {
        Err(never())
    }
    async fn networks(&self) -> Result<Vec<NetworkInfo>, EngineError> {
        Err(never())
    }
    async fn disk_usage(&self) -> Result<DiskUsage, EngineError> {
        Err(never())
    }
    async fn exec(&self, _: &str, _: &[String], _: Duration) -> Result<ExecOutput, EngineError> {
        Err(never())
    }
}
