//! Reports: terminal, JSON, JUnit, HTML and the snapshot transcript.
