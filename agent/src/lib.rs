//! nomos-agent: see DESIGN.md.
