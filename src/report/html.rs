//! The report as one self-contained HTML page: inline CSS and inline SVG, no script, no
//! font, image or stylesheet from elsewhere, and no `http://`/`https://` anywhere, so it
//! opens offline, survives a mail gateway and prints (a print stylesheet keeps sections
//! whole). Every text from the run is HTML-escaped. Figures a program may want to read carry
//! an `id` and a `data-value` (`rows-succeeded`, `rows-failed`, `calls`, `throttles`, …;
//! each failure group `data-code` and `data-count`).

use super::{fmt_ms, Report, Timeline};
use crate::model::QuotaClass;
use std::fmt::Write;

/// HTML-escape text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// `12,345`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut o = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            o.push(',');
        }
        o.push(c);
    }
    o
}

/// `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`, `1 d 02 h`.
pub fn dur(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let s = ms as f64 / 1000.0;
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    let t = (ms + 500) / 1000;
    let (d, h, m, sec) = (t / 86400, t % 86400 / 3600, t % 3600 / 60, t % 60);
    if d > 0 {
        format!("{d} d {h:02} h")
    } else if h > 0 {
        format!("{h} h {m:02} min")
    } else {
        format!("{m} min {sec:02} s")
    }
}

fn rate(r: f64) -> String {
    if r >= 1.0 && (r - r.round()).abs() < 1e-9 {
        format!("{}/s", r.round() as u64)
    } else if r >= 1.0 / 60.0 {
        let m = r * 60.0;
        if (m - m.round()).abs() < 1e-6 {
            format!("{}/min", m.round() as u64)
        } else {
            format!("{r:.2}/s")
        }
    } else {
        format!("{:.1}/h", r * 3600.0)
    }
}

fn class_color(c: QuotaClass) -> &'static str {
    match c {
        QuotaClass::Read => "#1f6fb2",
        QuotaClass::Write => "#d9640b",
        QuotaClass::EngagementWrite => "#7b3fa0",
        QuotaClass::ProspectingGet => "#0f8a7e",
        QuotaClass::ProspectingList => "#8a6d0f",
        QuotaClass::ProspectingWrite => "#b0306a",
    }
}

const CSS: &str = r#"
:root{--ink:#1d2430;--muted:#5b6576;--line:#dde2ea;--bg:#f5f7fa;--ok:#2e7d32;--bad:#c62828;--skip:#7b8494;--flight:#e0a100;--pend:#b8c2cf}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:28px 28px 40px}
header{border-bottom:3px solid var(--ink);padding-bottom:12px;margin-bottom:18px}
header .eyebrow{text-transform:uppercase;letter-spacing:.08em;font-size:12px;color:var(--muted);font-weight:600}
h1{font-size:26px;margin:2px 0 6px}
h2{font-size:17px;margin:0 0 10px}
h3{font-size:15px;margin:14px 0 6px}
.meta{color:var(--muted);font-size:13px}
.meta b{color:var(--ink);font-weight:600}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 18px;margin:0 0 16px;break-inside:avoid;page-break-inside:avoid}
.kpis{display:grid;grid-template-columns:repeat(6,1fr);gap:10px;margin-bottom:12px}
.kpi{border:1px solid var(--line);border-radius:6px;padding:10px 12px;border-top:4px solid var(--pend)}
.kpi .n{font-size:26px;font-weight:700;line-height:1.1}
.kpi .l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}
.kpi.ok{border-top-color:var(--ok)}.kpi.bad{border-top-color:var(--bad)}.kpi.skip{border-top-color:var(--skip)}
.kpi.flight{border-top-color:var(--flight)}.kpi.unch{border-top-color:#90a4ae}
.kpi.bad .n{color:var(--bad)}
.bar{display:flex;height:14px;border-radius:7px;overflow:hidden;background:var(--pend);margin:4px 0 12px}
.bar span{display:block;height:100%}
.facts{display:grid;grid-template-columns:repeat(4,1fr);gap:10px}
.fact{padding:8px 12px;background:var(--bg);border-radius:6px}
.fact .n{font-size:18px;font-weight:700}
.fact .l{color:var(--muted);font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600;text-transform:uppercase;letter-spacing:.04em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.code{display:inline-block;background:#fdecea;color:var(--bad);border-radius:4px;padding:1px 7px;font-weight:600}
.muted{color:var(--muted)}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;margin-right:5px}
.legend{display:flex;flex-wrap:wrap;gap:16px;font-size:12px;color:var(--muted);margin:4px 0 6px}
.legend .dash{display:inline-block;width:22px;border-top:2px dashed #333;vertical-align:3px;margin-right:5px}
.legend .hatch{display:inline-block;width:16px;height:12px;vertical-align:-1px;margin-right:5px;background:repeating-linear-gradient(45deg,#cfd6e0 0 3px,#eef1f5 3px 6px);border:1px solid #b9c2ce}
svg{display:block;width:100%;height:auto}
svg text{font:11px -apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:#5b6576}
svg .title{font-weight:600;fill:#1d2430;font-size:12px}
.stack{display:flex;height:12px;border-radius:3px;overflow:hidden;background:#eef1f5;min-width:160px}
.stack span{display:block;height:100%}
footer{color:var(--muted);font-size:12px;margin-top:8px}
.empty{color:var(--muted);font-style:italic}
@media (max-width:800px){.kpis{grid-template-columns:repeat(3,1fr)}.facts{grid-template-columns:repeat(2,1fr)}}
@media print{
 @page{size:A4;margin:14mm}
 body{background:#fff;font-size:11pt;-webkit-print-color-adjust:exact;print-color-adjust:exact}
 main{max-width:none;padding:0}
 section{border-color:#ccc;border-radius:0;padding:10px 0;border-width:0 0 1px 0}
 .page-break{break-before:page;page-break-before:always}
 tr{break-inside:avoid;page-break-inside:avoid}
}
"#;

/// Render the page.
pub fn render(r: &Report) -> String {
    let mut o = String::with_capacity(64 * 1024);
    let _ = render_into(&mut o, r);
    o
}

fn render_into(o: &mut String, r: &Report) -> std::fmt::Result {
    write!(
        o,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} — cosell run report</title><style>{CSS}</style></head><body><main>",
        esc(&r.playbook_name)
    )?;
    header(o, r)?;
    headline(o, r)?;
    chart(o, r)?;
    steps(o, r)?;
    failures(o, r)?;
    latency(o, r)?;
    attempts(o, r)?;
    write!(
        o,
        "<footer>Generated by cosell {} at {} from <span class=\"mono\">{}</span>. Rows come \
         from the journal (as the ledger does); rates from {}; example rows' lines and keys \
         from {}. This report holds ids, keys, error codes and messages only: no request, \
         no step output, and no value the API model marks sensitive.{}</footer>",
        esc(env!("CARGO_PKG_VERSION")),
        esc(&r.generated_at),
        esc(&r.run_dir),
        esc(&r.rates_source),
        esc(&r.keys_source),
        if r.torn_tail {
            " The journal's last record is incomplete (cut short, or being written) and was \
             ignored."
        } else {
            ""
        }
    )?;
    o.push_str("</main></body></html>\n");
    Ok(())
}

fn header(o: &mut String, r: &Report) -> std::fmt::Result {
    let window = match (r.first_ms, r.last_ms) {
        (Some(a), Some(b)) => format!("{} → {}", fmt_ms(a, false), fmt_ms(b, false)),
        _ => "no activity recorded".into(),
    };
    write!(
        o,
        "<header><div class=\"eyebrow\">cosell · run report</div><h1>{}</h1>\
         <div class=\"meta\">run <b class=\"mono\">{}</b> · catalog <b>{}</b> · {} · \
         setup <b>{}</b></div></header>",
        esc(&r.playbook_name),
        esc(&r.run_id),
        esc(&r.catalog),
        esc(&window),
        esc(&r.setup)
    )
}

fn kpi(o: &mut String, id: &str, class: &str, label: &str, n: u64) -> std::fmt::Result {
    write!(
        o,
        "<div class=\"kpi {class}\" id=\"{id}\" data-value=\"{n}\"><div class=\"n\">{}</div>\
         <div class=\"l\">{label}</div></div>",
        thousands(n)
    )
}

fn headline(o: &mut String, r: &Report) -> std::fmt::Result {
    let w = &r.rows;
    write!(
        o,
        "<section id=\"headline\"><h2>Outcome <span class=\"muted\" id=\"rows-total\" \
         data-value=\"{}\">· {} rows</span></h2><div class=\"kpis\">",
        w.total,
        thousands(w.total)
    )?;
    kpi(o, "rows-succeeded", "ok", "succeeded", w.succeeded)?;
    kpi(o, "rows-failed", "bad", "failed", w.failed)?;
    kpi(o, "rows-skipped", "skip", "skipped", w.skipped)?;
    kpi(o, "rows-unchanged", "unch", "unchanged", w.unchanged)?;
    kpi(o, "rows-in-flight", "flight", "in flight", w.in_flight)?;
    kpi(o, "rows-pending", "", "pending", w.pending)?;
    o.push_str("</div><div class=\"bar\" aria-hidden=\"true\">");
    let total = w.total.max(1) as f64;
    for (n, color) in [
        (w.succeeded, "var(--ok)"),
        (w.failed, "var(--bad)"),
        (w.skipped, "var(--skip)"),
        (w.unchanged, "#90a4ae"),
        (w.in_flight, "var(--flight)"),
    ] {
        if n > 0 {
            write!(
                o,
                "<span style=\"width:{:.3}%;background:{color}\"></span>",
                n as f64 * 100.0 / total
            )?;
        }
    }
    o.push_str("</div>");
    let active = r.active_ms();
    let ratio = if r.bound_s > 0.0 && active > 0 {
        format!("{:.2}× the bound", active as f64 / 1000.0 / r.bound_s)
    } else {
        "—".into()
    };
    let mut elapsed_note = String::new();
    if r.waiting_ms > 0 {
        let _ = write!(
            elapsed_note,
            "{} waiting for the daily quota",
            dur(r.waiting_ms)
        );
    }
    if r.idle_ms > 0 {
        if !elapsed_note.is_empty() {
            elapsed_note.push_str(", ");
        }
        let _ = write!(elapsed_note, "{} stopped between runs", dur(r.idle_ms));
    }
    let elapsed_note = if elapsed_note.is_empty() {
        "first to last record".to_string()
    } else {
        format!("of which {elapsed_note}")
    };
    write!(
        o,
        "<div class=\"facts\">\
         <div class=\"fact\" id=\"elapsed\" data-value=\"{}\"><div class=\"n\">{}</div><div class=\"l\">elapsed · {}</div></div>\
         <div class=\"fact\" id=\"bound\" data-value=\"{:.3}\"><div class=\"n\">{}</div><div class=\"l\">quota bound · working time {} ({})</div></div>\
         <div class=\"fact\" id=\"calls\" data-value=\"{}\"><div class=\"n\">{}</div><div class=\"l\">requests sent (polls, retries included)</div></div>\
         <div class=\"fact\"><div class=\"n\"><span id=\"throttles\" data-value=\"{}\">{}</span> / <span id=\"retries\" data-value=\"{}\">{}</span></div><div class=\"l\">throttled / retries</div></div>\
         </div>",
        r.elapsed_ms(),
        dur(r.elapsed_ms()),
        esc(&elapsed_note),
        r.bound_s,
        dur((r.bound_s * 1000.0) as i64),
        dur(active),
        esc(&ratio),
        r.calls,
        thousands(r.calls),
        r.throttles,
        thousands(r.throttles),
        r.retries,
        thousands(r.retries),
    )?;
    if !r.classes.is_empty() {
        o.push_str(
            "<h3>Calls per quota class</h3><table><thead><tr><th>class</th><th class=\"num\">calls</th>\
             <th class=\"num\">rate</th><th class=\"num\">daily budget</th><th class=\"num\">throttled</th>\
             <th class=\"num\">retries</th><th class=\"num\">time at rate</th></tr></thead><tbody>",
        );
        for c in &r.classes {
            write!(
                o,
                "<tr id=\"class-{0}\" data-calls=\"{1}\"><td><span class=\"swatch\" style=\"background:{2}\"></span>{0}</td>\
                 <td class=\"num\">{3}</td><td class=\"num\">{4}</td><td class=\"num\">{5}</td>\
                 <td class=\"num\">{6}</td><td class=\"num\">{7}</td><td class=\"num\">{8}</td></tr>",
                c.class.name(),
                c.calls,
                class_color(c.class),
                thousands(c.calls),
                rate(c.rate),
                c.daily.map(thousands).unwrap_or_else(|| "—".into()),
                thousands(c.throttles),
                thousands(c.retries),
                dur((c.calls.saturating_sub(1) as f64 / c.rate.max(1e-9) * 1000.0) as i64),
            )?;
        }
        o.push_str("</tbody></table>");
    }
    o.push_str("</section>");
    Ok(())
}

/// A round tick step (ms) giving at most ~8 ticks over `span`.
fn tick_step(span: i64) -> i64 {
    const S: i64 = 1000;
    const M: i64 = 60 * S;
    const H: i64 = 60 * M;
    [
        5 * S,
        10 * S,
        15 * S,
        30 * S,
        M,
        2 * M,
        5 * M,
        10 * M,
        15 * M,
        30 * M,
        H,
        2 * H,
        3 * H,
        6 * H,
        12 * H,
        24 * H,
        48 * H,
        7 * 24 * H,
    ]
    .into_iter()
    .find(|s| span / s <= 8)
    .unwrap_or(30 * 24 * H)
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

fn fmt_axis(v: f64) -> String {
    if v >= 100.0 || (v - v.round()).abs() < 1e-9 {
        thousands(v.round() as u64)
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn chart(o: &mut String, r: &Report) -> std::fmt::Result {
    let t: &Timeline = &r.timeline;
    let buckets = t.series.first().map_or(0, |s| s.1.len());
    let per = if t.unit_ms == 1000 {
        "second"
    } else {
        "minute"
    };
    let bucket_note = if t.bucket_ms > t.unit_ms {
        format!(" (averaged over {} buckets)", dur(t.bucket_ms))
    } else {
        String::new()
    };
    write!(
        o,
        "<section id=\"timeline\" data-buckets=\"{buckets}\" data-series=\"{}\"><h2>Requests per {per}, by quota class{}</h2>",
        t.series.len(),
        esc(&bucket_note)
    )?;
    if buckets == 0 {
        o.push_str("<p class=\"empty\">No request was sent.</p></section>");
        return Ok(());
    }
    o.push_str("<div class=\"legend\">");
    for (c, _) in &t.series {
        write!(
            o,
            "<span><span class=\"swatch\" style=\"background:{}\"></span>{}</span>",
            class_color(*c),
            c.name()
        )?;
    }
    o.push_str("<span><span class=\"dash\"></span>the class's rate limit</span>");
    if !r.waits.is_empty() {
        o.push_str("<span><span class=\"hatch\"></span>waiting for the rolling daily quota</span>");
    }
    o.push_str("</div>");
    let start = t.start_ms;
    let end = start + t.bucket_ms * buckets as i64;
    let span = (end - start).max(1);
    let (w, h, ml, mr, mt, mb) = (1000.0, 150.0, 58.0, 14.0, 22.0, 26.0);
    let pw = w - ml - mr;
    let ph = h - mt - mb;
    let x = |ms: i64| ml + (ms - start) as f64 / span as f64 * pw;
    let step = tick_step(span);
    let day = span > 20 * 3600 * 1000 || {
        let a = chrono::DateTime::from_timestamp_millis(start).map(|d| d.date_naive());
        let b = chrono::DateTime::from_timestamp_millis(end).map(|d| d.date_naive());
        a != b
    };
    let label_fmt = if day {
        "%d %b %H:%M"
    } else if step < 60_000 {
        "%H:%M:%S"
    } else {
        "%H:%M"
    };
    for (c, series) in &t.series {
        let cs = r.classes.iter().find(|k| k.class == *c);
        let limit = cs.map(|k| k.rate * t.unit_ms as f64 / 1000.0);
        let scale = t.unit_ms as f64 / t.bucket_ms as f64;
        let vmax = series.iter().copied().max().unwrap_or(0) as f64 * scale;
        let ymax = nice_max(vmax.max(limit.unwrap_or(0.0)) * 1.1);
        let y = |v: f64| mt + ph - (v / ymax).min(1.05) * ph;
        let color = class_color(*c);
        write!(
            o,
            "<svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{} requests per {per}\" class=\"panel\" data-class=\"{}\">",
            c.name(),
            c.name()
        )?;
        o.push_str("<defs><pattern id=\"hatch-");
        o.push_str(c.name());
        o.push_str("\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#eef1f5\"/><rect width=\"3\" height=\"6\" fill=\"#cfd6e0\"/></pattern></defs>");
        // waits first, under the data
        for wt in &r.waits {
            let (a, b) = (wt.from_ms.max(start), wt.until_ms.min(end));
            if b <= a {
                continue;
            }
            let (xa, xb) = (x(a), x(b));
            write!(
                o,
                "<rect class=\"wait\" x=\"{xa:.1}\" y=\"{mt}\" width=\"{:.1}\" height=\"{ph}\" fill=\"url(#hatch-{})\"><title>waiting for the {} daily quota: {} → {}</title></rect>",
                (xb - xa).max(1.0),
                c.name(),
                esc(&wt.class),
                fmt_ms(wt.from_ms, true),
                fmt_ms(wt.until_ms, true)
            )?;
            if xb - xa > 90.0 {
                write!(
                    o,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">waiting for the {} quota</text>",
                    (xa + xb) / 2.0,
                    mt + 14.0,
                    esc(&wt.class)
                )?;
            }
        }
        // y grid and labels
        for k in 0..=2 {
            let v = ymax * k as f64 / 2.0;
            let yy = y(v);
            write!(
                o,
                "<line x1=\"{ml}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e6e9ef\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                w - mr,
                ml - 6.0,
                yy + 4.0,
                fmt_axis(v)
            )?;
        }
        // x ticks
        let mut tk = (start / step + 1) * step;
        while tk < end {
            let xx = x(tk);
            let label = chrono::DateTime::from_timestamp_millis(tk)
                .map(|d| d.format(label_fmt).to_string())
                .unwrap_or_default();
            write!(
                o,
                "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#9aa3b1\"/>\
                 <text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                mt + ph,
                mt + ph + 4.0,
                mt + ph + 16.0,
                esc(&label)
            )?;
            tk += step;
        }
        // the series: a filled step area
        let mut d = format!("M{:.1},{:.1}", x(start), y(0.0));
        for (i, n) in series.iter().enumerate() {
            let v = *n as f64 * scale;
            let xa = x(start + t.bucket_ms * i as i64);
            let xb = x(start + t.bucket_ms * (i as i64 + 1));
            let yy = y(v);
            let _ = write!(d, "L{xa:.1},{yy:.1}L{xb:.1},{yy:.1}");
        }
        let _ = write!(d, "L{:.1},{:.1}Z", x(end), y(0.0));
        write!(
            o,
            "<path class=\"series\" d=\"{d}\" fill=\"{color}\" fill-opacity=\"0.28\" stroke=\"{color}\" stroke-width=\"1.2\" stroke-linejoin=\"round\"/>"
        )?;
        if let Some(l) = limit {
            let yy = y(l);
            write!(
                o,
                "<line class=\"limit\" x1=\"{ml}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#333\" stroke-width=\"1.2\" stroke-dasharray=\"6 4\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" class=\"title\">limit {}</text>",
                w - mr,
                w - mr - 2.0,
                yy - 4.0,
                esc(&rate(cs.map_or(0.0, |k| k.rate)))
            )?;
        }
        write!(
            o,
            "<line x1=\"{ml}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#9aa3b1\"/>\
             <text x=\"{ml}\" y=\"14\" class=\"title\">{} · {} requests · peak {} per {per}</text></svg>",
            w - mr,
            mt + ph,
            mt + ph,
            c.name(),
            thousands(series.iter().map(|n| *n as u64).sum()),
            fmt_axis(vmax)
        )?;
    }
    write!(
        o,
        "<div class=\"legend\">Times in UTC{}.</div></section>",
        if day { "" } else { ", on the day of the run" }
    )
}

fn stack(o: &mut String, parts: &[(u64, &str)]) -> std::fmt::Result {
    let total: u64 = parts.iter().map(|p| p.0).sum();
    o.push_str("<div class=\"stack\">");
    for (n, color) in parts {
        if *n > 0 {
            write!(
                o,
                "<span style=\"width:{:.3}%;background:{color}\"></span>",
                *n as f64 * 100.0 / total.max(1) as f64
            )?;
        }
    }
    o.push_str("</div>");
    Ok(())
}

fn steps(o: &mut String, r: &Report) -> std::fmt::Result {
    o.push_str(
        "<section id=\"steps\"><h2>Outcomes per step</h2><table><thead><tr><th>step</th><th>action</th>\
         <th class=\"num\">succeeded</th><th class=\"num\">failed</th><th class=\"num\">skipped</th>\
         <th class=\"num\">in flight</th><th class=\"num\">not reached</th><th></th></tr></thead><tbody>",
    );
    for s in &r.steps {
        write!(
            o,
            "<tr id=\"step-{0}\" data-succeeded=\"{2}\" data-failed=\"{3}\" data-skipped=\"{4}\" data-in-flight=\"{5}\">\
             <td class=\"mono\">{0}</td><td>{1}</td><td class=\"num\">{6}</td><td class=\"num\">{7}</td>\
             <td class=\"num\">{8}</td><td class=\"num\">{9}</td><td class=\"num\">{10}</td><td>",
            esc(&s.id),
            esc(s.action.as_deref().unwrap_or("")),
            s.succeeded,
            s.failed,
            s.skipped,
            s.in_flight,
            thousands(s.succeeded),
            thousands(s.failed),
            thousands(s.skipped),
            thousands(s.in_flight),
            thousands(s.not_reached),
        )?;
        stack(
            o,
            &[
                (s.succeeded, "var(--ok)"),
                (s.failed, "var(--bad)"),
                (s.skipped, "var(--skip)"),
                (s.in_flight, "var(--flight)"),
                (s.not_reached, "#e3e7ed"),
            ],
        )?;
        o.push_str("</td></tr>");
    }
    o.push_str("</tbody></table></section>");
    Ok(())
}

fn failures(o: &mut String, r: &Report) -> std::fmt::Result {
    let n: u64 = r.failures.iter().map(|g| g.count).sum();
    write!(
        o,
        "<section id=\"failures\" class=\"page-break\" data-value=\"{n}\"><h2>Failures by error code</h2>"
    )?;
    if r.failures.is_empty() {
        o.push_str("<p class=\"empty\">No row failed.</p></section>");
        return Ok(());
    }
    for g in &r.failures {
        let code = if g.code.is_empty() {
            "(no step error)"
        } else {
            &g.code
        };
        let steps: Vec<String> = g
            .steps
            .iter()
            .map(|(s, n)| format!("{} ({})", if s.is_empty() { "—" } else { s }, thousands(*n)))
            .collect();
        write!(
            o,
            "<div class=\"group\" data-code=\"{}\" data-count=\"{}\"><h3><span class=\"code\">{}</span> \
             {} row{} <span class=\"muted\">· step {}</span></h3>\
             <table><thead><tr><th class=\"num\">line</th><th>key</th><th>step</th><th>message</th></tr></thead><tbody>",
            esc(&g.code),
            g.count,
            esc(code),
            thousands(g.count),
            if g.count == 1 { "" } else { "s" },
            esc(&steps.join(", "))
        )?;
        for e in &g.examples {
            let line = if e.setup {
                "setup".to_string()
            } else {
                match e.line {
                    Some(l) => l.to_string(),
                    None => format!("record {}", e.index + 1),
                }
            };
            write!(
                o,
                "<tr><td class=\"num\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td></tr>",
                esc(&line),
                esc(e.key.as_deref().unwrap_or(if e.setup { "" } else { "?" })),
                esc(&e.step),
                esc(&e.message)
            )?;
        }
        if g.count > g.examples.len() as u64 {
            write!(
                o,
                "<tr><td></td><td colspan=\"3\" class=\"muted\">… and {} more (see ledger.xlsx, sheet Failures, or ledger.csv)</td></tr>",
                thousands(g.count - g.examples.len() as u64)
            )?;
        }
        o.push_str("</tbody></table></div>");
    }
    o.push_str("</section>");
    Ok(())
}

fn latency(o: &mut String, r: &Report) -> std::fmt::Result {
    o.push_str("<section id=\"latency\"><h2>Latency per operation</h2>");
    if r.ops.is_empty() {
        o.push_str("<p class=\"empty\">No request was sent.</p></section>");
        return Ok(());
    }
    o.push_str(
        "<table><thead><tr><th>operation</th><th>class</th><th class=\"num\">requests</th>\
         <th class=\"num\">errors</th><th class=\"num\">throttled</th><th class=\"num\">retries</th>\
         <th class=\"num\">p50</th><th class=\"num\">p90</th><th class=\"num\">p99</th><th class=\"num\">max</th></tr></thead><tbody>",
    );
    for p in &r.ops {
        write!(
            o,
            "<tr id=\"op-{0}\" data-calls=\"{1}\"><td class=\"mono\">{0}</td><td>{2}</td><td class=\"num\">{3}</td>\
             <td class=\"num\">{4}</td><td class=\"num\">{5}</td><td class=\"num\">{6}</td>\
             <td class=\"num\">{7}</td><td class=\"num\">{8}</td><td class=\"num\">{9}</td><td class=\"num\">{10}</td></tr>",
            esc(&p.op),
            p.calls,
            p.class.name(),
            thousands(p.calls),
            thousands(p.errors),
            thousands(p.throttles),
            thousands(p.retries),
            dur(p.p50 as i64),
            dur(p.p90 as i64),
            dur(p.p99 as i64),
            dur(p.max as i64),
        )?;
    }
    o.push_str("</tbody></table></section>");
    Ok(())
}

fn attempts(o: &mut String, r: &Report) -> std::fmt::Result {
    if r.attempts.is_empty() {
        return Ok(());
    }
    write!(
        o,
        "<section id=\"attempts\" data-value=\"{}\"><h2>Attempts (resume --retry-failed)</h2><table><thead><tr>\
         <th>attempt</th><th>started</th><th class=\"num\">rows redriven</th><th class=\"num\">succeeded</th>\
         <th class=\"num\">failed</th><th class=\"num\">skipped</th><th class=\"num\">unfinished</th></tr></thead><tbody>",
        r.attempts.len()
    )?;
    for a in &r.attempts {
        let when =
            a.at.as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|d| fmt_ms(d.timestamp_millis(), true))
                .unwrap_or_else(|| "—".into());
        write!(
            o,
            "<tr class=\"attempt\" data-n=\"{}\" data-redriven=\"{}\" data-succeeded=\"{}\" data-failed=\"{}\"><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            a.n,
            a.redriven,
            a.succeeded,
            a.failed,
            if a.n == 0 {
                "first run".to_string()
            } else {
                format!("redrive {}", a.n)
            },
            esc(&when),
            if a.n == 0 {
                "all rows".to_string()
            } else {
                thousands(a.redriven)
            },
            thousands(a.succeeded),
            thousands(a.failed),
            thousands(a.skipped),
            thousands(a.unfinished),
        )?;
    }
    o.push_str(
        "</tbody></table><p class=\"muted\">Each attempt's rows as they stood when the next attempt started (the last: now).</p></section>",
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_numbers() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(dur(850), "850 ms");
        assert_eq!(dur(65_000), "1 min 05 s");
        assert_eq!(rate(1.0), "1/s");
        assert_eq!(rate(0.5), "30/min");
    }

    #[test]
    fn an_empty_report_renders_without_network_references_or_script() {
        let page = render(&Report::default());
        assert!(page.starts_with("<!doctype html>"));
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(!page.contains("<script"));
        assert!(page.contains("id=\"rows-succeeded\" data-value=\"0\""));
    }
}
