//! uniffi's `uniffi-bindgen` command, built from the same uniffi version as the library it
//! reads, so the generated code always matches the scaffolding (see `scripts/bindings.sh`).

fn main() {
    uniffi::uniffi_bindgen_main()
}
