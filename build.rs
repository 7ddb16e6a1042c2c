//! Rebuilds the library when a migration changes: `sqlx::migrate!` embeds
//! the files under `migrations/` at compile time.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
