//! Diagnosis: rules turning probe outcomes into a Container Operations Report.
