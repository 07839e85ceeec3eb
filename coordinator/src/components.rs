//! Deploy-time checks of function components: each must be a valid
//! WebAssembly *component* exporting `wasi:http/incoming-handler@0.2.x`, so
//! a broken function is refused before any edge sees it.

use wasmparser::{Encoding, Parser, Payload, Validator, WasmFeatures};

pub const HANDLER_INTERFACE: &str = "wasi:http/incoming-handler@0.2";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ComponentError {
    #[error("not a WebAssembly component (a core module or other bytes); build it for wasm32-wasip2 as a wasi:http proxy")]
    NotComponent,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error("the component does not export {HANDLER_INTERFACE}.x (exports: {0})")]
    NoHandler(String),
}

pub fn validate_http_component(bytes: &[u8]) -> Result<(), ComponentError> {
    let mut depth = 0usize;
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| ComponentError::Invalid(e.message().to_string()))?;
        match payload {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != Encoding::Component {
                    return Err(ComponentError::NotComponent);
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export =
                        export.map_err(|e| ComponentError::Invalid(e.message().to_string()))?;
                    exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .map_err(|e| ComponentError::Invalid(e.message().to_string()))?;
    if exports.iter().any(|e| e.starts_with(HANDLER_INTERFACE)) {
        Ok(())
    } else {
        Err(ComponentError::NoHandler(if exports.is_empty() {
            "none".into()
        } else {
            exports.join(", ")
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_an_http_component() {
        assert!(matches!(
            validate_http_component(b""),
            Err(ComponentError::Invalid(_))
        ));
        assert!(matches!(
            validate_http_component(b"hello world"),
            Err(ComponentError::Invalid(_))
        ));
        // The smallest valid core module.
        let core = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
        assert_eq!(
            validate_http_component(&core),
            Err(ComponentError::NotComponent)
        );
        // The smallest valid component: valid, but exports nothing.
        let empty_component = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
        assert!(matches!(
            validate_http_component(&empty_component),
            Err(ComponentError::NoHandler(_))
        ));
    }
}
