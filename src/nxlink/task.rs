//! What every `createandcall` of a campaign shares: the job's `[task]`.

/// The `createandcall` fields that are the same for every batch (the job
/// file's `[task]` section, checked and rounded by `job`).
#[derive(Debug, Clone)]
pub struct TaskSettings {
    /// Each batch's task is named `"<task_name> #<seq>"`.
    pub task_name: String,
    pub task_desc: String,
    pub strategy_name: String,
    pub dispatch_type: u8,
    pub agent_group_no: String,
    /// Rounded to two decimals, as the vendor documents.
    pub predict_call_rate: f64,
    /// Rounded to one decimal, as the vendor documents.
    pub ratio_call_rate: f64,
    pub start_count: u32,
    pub startup_type: u8,
}

impl TaskSettings {
    /// Whether the vendor starts dialling a task as soon as it is created
    /// (`startupType` 3); a manual or scheduled start may come at any time.
    pub fn starts_at_once(&self) -> bool {
        self.startup_type == STARTUP_IMMEDIATE
    }

    /// The start, as people read it.
    pub fn startup_words(&self) -> &'static str {
        match self.startup_type {
            STARTUP_IMMEDIATE => "starts at once",
            1 => "started by hand in the console",
            2 => "scheduled",
            _ => "no start set",
        }
    }
}

/// `startupType` of a task the vendor starts as soon as it is created.
pub const STARTUP_IMMEDIATE: u8 = 3;

/// What `other` carries for an order whose job packs no column into it.
pub const EMPTY_OTHER: &str = "{}";
