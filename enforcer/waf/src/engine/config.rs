//! Engine configuration set by directives (`SecRuleEngine`, body limits, ...).

use super::EngineMode;

/// What to do when a body exceeds its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BodyLimitAction {
    /// Reject the request with 403 (only when the engine is `On`).
    #[default]
    Reject,
    /// Inspect the first `limit` bytes and go on.
    ProcessPartial,
}

/// The effective configuration of a ruleset.
#[derive(Clone, Debug)]
pub struct Config {
    /// `SecRuleEngine`
    pub engine: EngineMode,
    /// `SecRequestBodyAccess`
    pub request_body_access: bool,
    /// `SecRequestBodyLimit` (bytes)
    pub request_body_limit: u64,
    /// `SecRequestBodyNoFilesLimit` (bytes; bodies that are not multipart)
    pub request_body_no_files_limit: u64,
    /// `SecRequestBodyLimitAction`
    pub request_body_limit_action: BodyLimitAction,
    /// `SecRequestBodyJsonDepthLimit`
    pub request_body_json_depth_limit: usize,
    /// `SecArgumentsLimit`
    pub arguments_limit: usize,
    /// `SecResponseBodyAccess`
    pub response_body_access: bool,
    /// `SecResponseBodyMimeType` (lowercase; empty = the ModSecurity default set)
    pub response_body_mime_types: Vec<String>,
    /// `SecResponseBodyLimit`
    pub response_body_limit: u64,
    /// `SecResponseBodyLimitAction`
    pub response_body_limit_action: BodyLimitAction,
    /// `SecArgumentSeparator`
    pub argument_separator: u8,
    /// `SecCookieFormat` (0 or 1; both parse the same way here)
    pub cookie_format: u8,
    /// `SecComponentSignature`s
    pub component_signatures: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            engine: EngineMode::On,
            request_body_access: false,
            request_body_limit: 134_217_728,
            request_body_no_files_limit: 1_048_576,
            request_body_limit_action: BodyLimitAction::Reject,
            request_body_json_depth_limit: 512,
            arguments_limit: 1000,
            response_body_access: false,
            response_body_mime_types: vec!["text/plain".into(), "text/html".into()],
            response_body_limit: 524_288,
            response_body_limit_action: BodyLimitAction::Reject,
            argument_separator: b'&',
            cookie_format: 0,
            component_signatures: Vec::new(),
        }
    }
}
