//! nomos-server: see DESIGN.md.
