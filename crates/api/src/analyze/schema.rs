//! `schemaValidation`: each resource's own validation, reported as analysis messages. Errors are
//! IST0106; warnings that carry a code of their own (unreachable or ineffective VirtualService
//! rules) use it, other warnings are IST0133.

use super::{Analyzer, Code, Context, Message};

pub struct SchemaValidation;

impl Analyzer for SchemaValidation {
    fn name(&self) -> &'static str {
        "schemaValidation.CollectionValidationAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        for r in cx.all().filter(|r| r.kind.is_istio()) {
            for f in r.validate().findings {
                let code = match (f.severity, f.code.and_then(Code::by_code)) {
                    (crate::Severity::Error, _) => Code::SchemaValidationError,
                    (crate::Severity::Warning, Some(c)) => c,
                    (crate::Severity::Warning, None) => Code::SchemaWarning,
                };
                let text = if f.path.is_empty() {
                    f.message
                } else {
                    format!("{}: {}", f.path, f.message)
                };
                out.push(Message::new(code, &r.into(), &f.path, text));
            }
        }
    }
}
