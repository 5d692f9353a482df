//! The dry run: every step of every row rendered and validated, in parallel.
//!
//! A reader thread streams rows in batches, checker threads render and validate them, and the
//! calling thread merges the findings in row order (bounded channels keep memory flat). Owns
//! only the checking; rendering and locating belong to [`Campaign`].

use super::*;
/// Rows per batch handed to a checker thread.
const BATCH_ROWS: usize = 512;
/// Checker threads at most.
const MAX_WORKERS: usize = 4;

type RowItem = Result<(Row, MjValue), Diagnostic>;

/// What checking some rows found.
struct Batch {
    diags: Vec<Diagnostic>,
    shown: Vec<ShownRequest>,
    show: usize,
    hashes: Vec<u64>,
    rows: u64,
    requests: u64,
}

impl Batch {
    fn new(show: usize) -> Batch {
        Batch {
            diags: Vec::new(),
            shown: Vec::new(),
            show,
            hashes: Vec::new(),
            rows: 0,
            requests: 0,
        }
    }
}

/// Check every step of some rows.
fn check_rows(c: &Campaign, base: &MjValue, items: Vec<RowItem>, show: usize) -> Batch {
    let mut b = Batch::new(show);
    b.hashes.reserve(items.len());
    for item in items {
        b.rows += 1;
        let (row, mj) = match item {
            Ok(x) => x,
            Err(d) => {
                b.diags.push(d);
                continue;
            }
        };
        b.hashes.push(hash_str(&row.key));
        let ctx = minijinja::context! { row => mj, ..base.clone() };
        for step in &c.steps {
            check_step(c, step, Some(&row), &row.key, &ctx, &mut b);
        }
        for (name, t) in &c.ledger {
            if let Err(e) = c.templates.eval(t, &ctx) {
                let d = Diagnostic::error(
                    c.loc(t.pos),
                    template_code(&e),
                    format!("ledger column {name}: {e}"),
                )
                .with_row(row.index)
                .with_origin(c.csv_origin(&origin_of(t), Some(&row)));
                b.diags.push(d);
            }
        }
    }
    b
}

/// Render one step, validate the request, and check its `when` and `expect` templates.
fn check_step(
    c: &Campaign,
    step: &Step,
    row: Option<&Row>,
    key: &str,
    ctx: &MjValue,
    b: &mut Batch,
) {
    b.requests += 1;
    let (mut req, mut errs) = c.render_mj(step, key, ctx);
    // the top-level members a patch sets (diagnostics name them as the patch's)
    let mut patched: HashSet<String> = HashSet::new();
    if let Some(p) = &step.patch {
        // the identifiers and the patch: what the record must accept (its other members are
        // read at run time, so only what the patch names is checked)
        let patch = c.render_tree(&p.tree, ctx, &mut String::new(), &mut errs);
        if let (Some(J::Object(patch)), Some(obj)) = (patch, req.as_object_mut()) {
            patched.extend(patch.keys().cloned());
            obj.extend(patch);
        }
    }
    let failed: HashSet<String> = errs.iter().map(|(p, _)| p.clone()).collect();
    for (path, msg) in errs {
        b.diags.push(c.template_diag(step, &path, msg, row, false));
    }
    if let Some(w) = &step.when {
        if let Err(e) = c.templates.truth(w, ctx) {
            let mut d = Diagnostic::error(c.loc(w.pos), template_code(&e), format!("when: {e}"))
                .with_step(step.qualified())
                .with_origin(c.csv_origin(&origin_of(w), row));
            if let Some(r) = row {
                d = d.with_row(r.index);
            }
            b.diags.push(d);
        }
    }
    for Expect {
        path,
        pos,
        node,
        target,
    } in &step.expect
    {
        let mut errs = Vec::new();
        let value = c.render_tree(node, ctx, &mut String::new(), &mut errs);
        if let (true, Some(v), Some(shape)) = (
            errs.is_empty() && !matches!(node, TNode::Lit(_)),
            &value,
            target,
        ) {
            for mut d in
                expect_violations(&c.playbook.file, *pos, &step.qualified(), path, *shape, v)
            {
                if let Some(r) = row {
                    d = d.with_row(r.index);
                    if reads_row(node) {
                        d = d.with_origin(c.csv_origin(&origin_of_tree(node), row));
                    }
                }
                b.diags.push(d);
            }
        }
        for (_, e) in errs {
            let mut d = Diagnostic::error(
                c.loc(*pos),
                template_code(&e),
                format!("expect {path}: {e}"),
            )
            .with_step(step.qualified());
            if let Some(r) = row {
                d = d.with_row(r.index);
                if reads_row(node) {
                    d = d.with_origin(Some(c.input_at(r.line, None)));
                }
            }
            b.diags.push(d);
        }
    }
    let violations = match step.patch {
        Some(_) => model::model().check_patch(&step.action, &req),
        None => model::model().check_request(&step.action, &req),
    };
    for v in violations {
        if failed.contains(&v.path) {
            continue; // already reported: its template failed
        }
        let (pos, o) = c.locate(step, &v.path);
        let mut message = v.message;
        if message.contains(model::CELL_PLACEHOLDER) {
            if let Origin::Column(col) = &o {
                message = message.replace(model::CELL_PLACEHOLDER, &template::cell_expr(col));
            }
        }
        if message == "expected list, found a string" {
            message.push_str(
                " (turn a cell into a list with a filter: \"{{ row.column | split(';') }}\")",
            );
        }
        let top = v.path.split(['.', '[']).next().unwrap_or("");
        let mut d = Diagnostic::error(c.loc(pos), v.code.as_str(), message)
            .in_patch(patched.contains(top))
            .with_step(step.qualified())
            .with_member(v.path)
            .with_suggestion(v.suggestion)
            .with_origin(c.csv_origin(&o, row));
        if let Some(r) = row {
            d = d.with_row(r.index);
        }
        b.diags.push(d);
    }
    if b.shown.len() < b.show {
        b.shown.push(ShownRequest {
            step: step.qualified(),
            action: step.action.clone(),
            row: row.map(|r| r.index),
            line: row.map(|r| r.line),
            key: row.map(|r| r.key.clone()),
            request: template::display(&req),
        });
    }
}

/// The dry run's state: findings (the same fixed finding on many rows is reported once),
/// row-key hashes for the uniqueness check.
pub(super) struct Checker<'c> {
    c: &'c Campaign,
    show: usize,
    shown: Vec<ShownRequest>,
    kept: Vec<(Diagnostic, u64)>,
    index: HashMap<u64, usize>,
    diags: Diagnostics,
    rows: u64,
    requests: u64,
    columns: Vec<String>,
    /// One 64-bit hash per row key: 8 bytes per row.
    key_hashes: Vec<u64>,
}

/// A stable 64-bit hash of a row key (the first 8 bytes of its SHA-256).
fn hash_str(s: &str) -> u64 {
    let d = Sha256::digest(s.as_bytes());
    let mut x = [0u8; 8];
    x.copy_from_slice(&d[..8]);
    u64::from_le_bytes(x)
}

impl<'c> Checker<'c> {
    pub(super) fn new(c: &'c Campaign, show: usize) -> Self {
        Checker {
            c,
            show,
            shown: Vec::new(),
            kept: Vec::new(),
            index: HashMap::new(),
            diags: Diagnostics::new(),
            rows: 0,
            requests: 0,
            columns: Vec::new(),
            key_hashes: Vec::new(),
        }
    }

    fn push(&mut self, d: Diagnostic) {
        // a finding that does not depend on the row is reported once, with a count
        if d.origin.is_none() && d.row.is_some() {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            d.location.to_string().hash(&mut h);
            d.code.hash(&mut h);
            d.member.hash(&mut h);
            d.message.hash(&mut h);
            d.step.hash(&mut h);
            let k = h.finish();
            if let Some(&i) = self.index.get(&k) {
                self.kept[i].1 += 1;
                return;
            }
            if self.kept.len() < Diagnostics::KEEP {
                self.index.insert(k, self.kept.len());
            }
        }
        if self.kept.len() < Diagnostics::KEEP {
            self.kept.push((d, 1));
        } else {
            self.diags.push(d);
        }
    }

    pub(super) fn run(&mut self) {
        let c = self.c;
        for d in c.warnings.items() {
            self.push(d.clone());
        }
        let setup_ph = MjValue::from_serialize(c.placeholders(&c.setup, "setup"));
        let steps_ph = MjValue::from_serialize(c.placeholders(&c.steps, "steps"));
        let base = minijinja::context! { vars => c.vars_mj.clone(), setup => setup_ph, steps => steps_ph, run => c.run_mj.clone() };
        let mut b = Batch::new(self.show);
        for step in &c.setup {
            check_step(c, step, None, SETUP_KEY, &base, &mut b);
        }
        self.absorb(b);
        if c.is_pending_list() {
            // the rows are listed when the run starts: check each step once, its row values
            // deferred (an item of the list's shape), so what the playbook writes itself is
            // checked now and the rows' values when they are listed
            if let Some(row) = c.placeholder_row() {
                let ctx = minijinja::context! { row => row, ..base.clone() };
                let mut b = Batch::new(self.show);
                for step in &c.steps {
                    check_step(c, step, None, "listed", &ctx, &mut b);
                }
                self.absorb(b);
            }
            return;
        }
        let mut rows = match c.open_rows() {
            Ok(r) => r,
            Err(ds) => {
                for d in ds.into_items() {
                    self.push(d);
                }
                return;
            }
        };
        self.columns = rows.columns();
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(MAX_WORKERS);
        let show = self.show;
        let read_batch = |rows: &mut Rows| -> Vec<RowItem> {
            let mut v = Vec::with_capacity(BATCH_ROWS);
            while v.len() < BATCH_ROWS {
                match rows.next_with_context() {
                    Some(x) => v.push(x),
                    None => break,
                }
            }
            v
        };
        if workers < 2 {
            loop {
                let items = read_batch(&mut rows);
                if items.is_empty() {
                    break;
                }
                let b = check_rows(c, &base, items, show);
                self.absorb(b);
            }
        } else {
            // a reader, `workers` checkers, and this thread merging results in row order;
            // bounded channels keep the rows in flight (and so memory) bounded
            let base = &base;
            let (btx, brx) = std::sync::mpsc::sync_channel::<(u64, Vec<RowItem>)>(workers * 2);
            let brx = std::sync::Mutex::new(brx);
            let (rtx, rrx) = std::sync::mpsc::sync_channel::<(u64, Batch)>(workers * 2);
            std::thread::scope(|sc| {
                sc.spawn(move || {
                    let mut n = 0;
                    loop {
                        let items = read_batch(&mut rows);
                        if items.is_empty() || btx.send((n, items)).is_err() {
                            break;
                        }
                        n += 1;
                    }
                });
                for _ in 0..workers {
                    let rtx = rtx.clone();
                    let brx = &brx;
                    sc.spawn(move || loop {
                        let msg = match brx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => break,
                        };
                        let Ok((n, items)) = msg else { break };
                        if rtx.send((n, check_rows(c, base, items, show))).is_err() {
                            break;
                        }
                    });
                }
                drop(rtx);
                let mut pending: BTreeMap<u64, Batch> = BTreeMap::new();
                let mut next = 0;
                for (n, b) in rrx {
                    pending.insert(n, b);
                    while let Some(b) = pending.remove(&next) {
                        self.absorb(b);
                        next += 1;
                    }
                }
            });
        }
        self.duplicates();
    }

    /// Merge a batch's results, in order.
    fn absorb(&mut self, b: Batch) {
        self.rows += b.rows;
        self.requests += b.requests;
        self.key_hashes.extend(b.hashes);
        for d in b.diags {
            self.push(d);
        }
        for sh in b.shown {
            if self.shown.len() < self.show {
                self.shown.push(sh);
            }
        }
    }

    /// Report duplicate row keys, naming both lines. Needs a second pass over the CSV only
    /// when some key hash repeats.
    fn duplicates(&mut self) {
        let mut sorted = std::mem::take(&mut self.key_hashes);
        sorted.sort_unstable();
        let mut dups: HashSet<u64> = HashSet::new();
        for w in sorted.windows(2) {
            if w[0] == w[1] {
                dups.insert(w[0]);
            }
        }
        drop(sorted);
        if dups.is_empty() {
            return;
        }
        let c = self.c;
        let Ok(rows) = c.open_rows() else { return };
        let mut first: HashMap<u64, (u64, String)> = HashMap::new();
        for row in rows.flatten() {
            let h = hash_str(&row.key);
            if !dups.contains(&h) {
                continue;
            }
            match first.get(&h) {
                None => {
                    first.insert(h, (row.line, row.key.clone()));
                }
                Some((line, k)) if *k == row.key => {
                    let pos = c.keys.key.as_ref().map(|t| t.pos);
                    let loc = c.input_at(row.line, None);
                    let how = match pos {
                        Some(p) => format!("input.key (line {} of the playbook)", p.line),
                        None => "the row key (the line number)".into(),
                    };
                    let d = Diagnostic::error(loc, "DUPLICATE_ROW_KEY", format!("duplicate row key {}: {w} {} and {w} {} have the same {how}; row keys must be unique (they name rows in the journal and the idempotency tokens)", crate::model::quote(k), line, row.line, w = c.input().line_word())).with_row(row.index);
                    self.push(d);
                }
                Some(_) => {}
            }
        }
    }

    pub(super) fn finish(self) -> Report {
        let mut diags = Diagnostics::new();
        for (mut d, n) in self.kept {
            if n > 1 {
                d.message.push_str(&format!(" (on {n} rows)"));
            }
            diags.push(d);
        }
        diags.extend(self.diags);
        Report {
            diagnostics: diags,
            rows: self.rows,
            requests: self.requests,
            columns: self.columns,
            shown: self.shown,
        }
    }
}
