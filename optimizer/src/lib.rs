//! Pure placement decisions.
