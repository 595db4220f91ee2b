//! Image transfer tickets, as the engine asks a host for them.

use reqwest::Method;
use vireo_agent_proto::transfer::paths;
use vireo_agent_proto::{
    AgentResult, ExtendTicket, TicketSpec, TicketStatus, VerifyRequest, VerifyResult,
};

use super::{segment, AgentClient};

impl AgentClient {
    /// Opens the data path of a volume for `spec.id`.
    pub async fn add_ticket(&self, spec: &TicketSpec) -> AgentResult<TicketStatus> {
        self.post(paths::TICKETS, spec).await
    }

    pub async fn ticket_status(&self, id: &str) -> AgentResult<TicketStatus> {
        self.get(&paths::ticket(&segment(id))).await
    }

    pub async fn extend_ticket(&self, id: &str, timeout_s: u64) -> AgentResult<TicketStatus> {
        self.post(&paths::extend(&segment(id)), &ExtendTicket { timeout_s })
            .await
    }

    /// Closes the data path (requests in flight end first); the last status.
    pub async fn remove_ticket(&self, id: &str) -> AgentResult<TicketStatus> {
        self.call(Method::DELETE, &paths::ticket(&segment(id)), None)
            .await
    }

    pub async fn verify_volume(&self, req: &VerifyRequest) -> AgentResult<VerifyResult> {
        self.post(paths::VERIFY, req).await
    }

    /// `https://ADDRESS:PORT` of this agent (the data path's origin).
    pub fn origin(&self) -> &str {
        self.base_url()
            .strip_suffix(vireo_agent_proto::PREFIX)
            .unwrap_or(self.base_url())
    }
}
