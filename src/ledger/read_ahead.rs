//! Orders read ahead of the one who writes them out, a chunk at a time.
//! The text of a chunk's lines lives in one buffer, so that handing lines
//! to another thread costs no allocation per line.

use std::borrow::Cow;
use std::ops::Range;

use super::model::{LastCall, OrderLine};
use crate::state::OrderState;

/// Lines of orders, their text in one buffer.
#[derive(Debug, Default)]
pub(super) struct Chunk {
    text: String,
    lines: Vec<Kept>,
}

/// An [`OrderLine`] whose text is ranges of its chunk's buffer.
#[derive(Debug)]
struct Kept {
    order_id: Option<Range<usize>>,
    phone: Range<usize>,
    state: OrderState,
    batch: Option<u32>,
    code: Option<i64>,
    message: Option<Range<usize>>,
    line: u64,
    updated_at_ms: Option<i64>,
    last_call: Option<KeptCall>,
    req_id: Option<Range<usize>>,
    attempt: u32,
    first_order_id: Option<Range<usize>>,
}

#[derive(Debug)]
struct KeptCall {
    answered: bool,
    talk_seconds: Option<i64>,
    hangup_reason: Option<Range<usize>>,
    intent: Option<Range<usize>>,
}

impl Chunk {
    /// Lines a chunk holds before it is handed on.
    pub(super) const LINES: usize = 1024;

    pub(super) fn is_full(&self) -> bool {
        self.lines.len() >= Chunk::LINES
    }

    pub(super) fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub(super) fn push(&mut self, line: &OrderLine<'_>) {
        let text = &mut self.text;
        let kept = Kept {
            order_id: keep_some(text, &line.order_id),
            phone: keep(text, &line.phone),
            state: line.state,
            batch: line.batch,
            code: line.code,
            message: keep_some(text, &line.message),
            line: line.line,
            updated_at_ms: line.updated_at_ms,
            last_call: line.last_call.as_ref().map(|call| KeptCall {
                answered: call.answered,
                talk_seconds: call.talk_seconds,
                hangup_reason: keep_some(text, &call.hangup_reason),
                intent: keep_some(text, &call.intent),
            }),
            req_id: keep_some(text, &line.req_id),
            attempt: line.attempt,
            first_order_id: keep_some(text, &line.first_order_id),
        };
        self.lines.push(kept);
    }

    /// The chunk's lines, borrowing their text from it.
    pub(super) fn lines(&self) -> impl Iterator<Item = OrderLine<'_>> {
        let text = |range: &Range<usize>| Cow::Borrowed(&self.text[range.clone()]);
        let some = move |range: &Option<Range<usize>>| range.as_ref().map(text);
        self.lines.iter().map(move |kept| OrderLine {
            order_id: some(&kept.order_id),
            phone: text(&kept.phone),
            state: kept.state,
            batch: kept.batch,
            code: kept.code,
            message: some(&kept.message),
            line: kept.line,
            updated_at_ms: kept.updated_at_ms,
            last_call: kept.last_call.as_ref().map(|call| LastCall {
                answered: call.answered,
                talk_seconds: call.talk_seconds,
                hangup_reason: some(&call.hangup_reason),
                intent: some(&call.intent),
            }),
            req_id: some(&kept.req_id),
            attempt: kept.attempt,
            first_order_id: some(&kept.first_order_id),
        })
    }
}

fn keep(text: &mut String, value: &str) -> Range<usize> {
    let start = text.len();
    text.push_str(value);
    start..text.len()
}

fn keep_some(text: &mut String, value: &Option<Cow<'_, str>>) -> Option<Range<usize>> {
    value.as_deref().map(|value| keep(text, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::BatchState;

    #[test]
    fn a_chunk_gives_back_each_line_as_it_was_pushed() {
        let full = OrderLine {
            order_id: Some(Cow::Borrowed("A1")),
            phone: Cow::Borrowed("85251234567"),
            state: OrderState::InBatch(BatchState::Rejected),
            batch: Some(7),
            code: Some(41000),
            message: Some(Cow::Borrowed("说明, with \"quotes\"\n")),
            line: 12,
            updated_at_ms: Some(1_767_225_600_000),
            last_call: Some(LastCall {
                answered: true,
                talk_seconds: Some(42),
                hangup_reason: Some(Cow::Borrowed("normal")),
                intent: None,
            }),
            req_id: Some(Cow::Borrowed("req-9")),
            attempt: 2,
            first_order_id: Some(Cow::Borrowed("A0")),
        };
        let bare = OrderLine {
            order_id: None,
            phone: Cow::Borrowed(""),
            state: OrderState::InBatch(BatchState::Pending),
            batch: None,
            code: None,
            message: None,
            line: 13,
            updated_at_ms: None,
            last_call: None,
            req_id: None,
            attempt: 1,
            first_order_id: None,
        };
        let mut chunk = Chunk::default();
        assert!(chunk.is_empty());
        for line in [&full, &bare, &full] {
            chunk.push(line);
        }
        let back: Vec<String> = chunk.lines().map(|line| format!("{line:?}")).collect();
        let pushed: Vec<String> = [&full, &bare, &full]
            .iter()
            .map(|line| format!("{line:?}"))
            .collect();
        assert_eq!(back, pushed);
        assert!(!chunk.is_full());
    }
}
