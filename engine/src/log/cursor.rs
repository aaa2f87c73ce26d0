//! Where the next stripe of the log goes.

use crate::segments::SegmentInfo;
use std::sync::Arc;

/// Where the next stripe goes.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    pub segment: Arc<SegmentInfo>,
    pub offset: u32,
    pub ordinal: u32,
}
