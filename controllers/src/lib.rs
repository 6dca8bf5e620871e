//! nomos-controllers: see DESIGN.md.
