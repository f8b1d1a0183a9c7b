//! Server-rendered SVG drawings of a focused lineage neighbourhood.
//!
//! Analysts open these pages on locked-down machines, often offline, so the
//! drawing is plain SVG produced on the server: no JavaScript, nothing to fetch,
//! and every node is an ordinary link to its own page. Lineage graphs reach 100k
//! nodes, which no drawing shows legibly, so this module never walks the graph:
//! the caller picks the neighbourhood (provenance left of the focus node, blast
//! radius right of it) and this module only lays out and draws what it is given.

use std::cmp::Ordering;
use std::fmt::{self, Write};

use crate::xml::escape;

const COLUMN_SPACING: f64 = 190.0;
const ROW_SPACING: f64 = 56.0;
/// Half a truncated label either side of the outermost columns.
const PAD_X: f64 = 100.0;
const PAD_TOP: f64 = 30.0;
/// Room for the label under the lowest shape.
const PAD_BOTTOM: f64 = 42.0;
const MIN_WIDTH: f64 = 300.0;
const MIN_HEIGHT: f64 = 120.0;
/// Every shape fits within this distance of its centre horizontally, so edges
/// attach at the same place whatever the kind.
const HALF: f64 = 16.0;
/// Crossing reduction settles quickly on the small neighbourhoods drawn here.
const SWEEPS: usize = 3;
const NAME_CHARS: usize = 24;

/// Calm to alarming. Labels are drawn beside the shapes, in dark grey on the
/// background, so no fill colour can make the text unreadable.
const PALETTE: [&str; 5] = ["#4e79a7", "#59a14f", "#edc948", "#f28e2b", "#d62728"];
const UNLABELLED: &str = "#9e9e9e";
const SVG_OPEN: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" role="group" aria-labelledby="graph-title" font-family="system-ui, sans-serif" font-size="11""#;

#[derive(Debug, Clone)]
pub struct DrawNode {
    pub key: String,
    /// Shown truncated; whole in the tooltip.
    pub name: String,
    /// Picks the shape, see [`kind_shape`].
    pub kind: String,
    /// Effective sensitivity label; `None` is unlabelled.
    pub label: Option<String>,
    /// Label rank, 0 least sensitive, out of `ranks` labels in the taxonomy.
    pub rank: Option<usize>,
    pub ranks: usize,
    /// Column: negative upstream of the focus, 0 the focus, positive downstream.
    pub layer: i32,
    pub focus: bool,
    /// On the highlighted blast-radius or provenance set.
    pub highlighted: bool,
    /// Link target (path and query), escaped here.
    pub href: String,
}

/// `from` and `to` index the nodes slice; out-of-range edges are skipped.
#[derive(Debug, Clone)]
pub struct DrawEdge {
    pub from: usize,
    pub to: usize,
    pub highlighted: bool,
    /// Who said the edge is there (shown as its tooltip).
    pub origin: &'static str,
    /// Seen in traffic or traces rather than declared: drawn dashed.
    pub seen: bool,
}

#[derive(Debug, Clone)]
pub struct Drawing {
    pub svg: String,
    pub width: u32,
    pub height: u32,
}

/// The colour of a label rank (a sequential scale from a calm colour for the
/// least sensitive to a strong red for the most), and grey for unlabelled.
pub fn label_colour(rank: Option<usize>, ranks: usize) -> &'static str {
    let Some(rank) = rank else {
        return UNLABELLED;
    };
    // A one-label taxonomy has no order to show.
    if ranks <= 1 {
        return PALETTE[0];
    }
    let top = ranks - 1;
    // Any taxonomy is stretched over the palette so its top rank is always the red.
    PALETTE[rank.min(top) * (PALETTE.len() - 1) / top]
}

/// The shape drawn for a kind, for a legend.
pub fn kind_shape(kind: &str) -> &'static str {
    match kind {
        "data_source" => "cylinder",
        "api" => "hexagon",
        "mcp_server" => "rect",
        "mcp_tool" => "triangle",
        "agent" => "circle",
        "model_deployment" => "round-rect",
        "model" => "diamond",
        "gateway" => "octagon",
        "subscription" => "pentagon",
        "project" => "ellipse",
        "connection" => "parallelogram",
        "process" => "triangle-down",
        _ => "square",
    }
}

/// Lays out and draws. `title` is the accessible name.
pub fn draw(title: &str, nodes: &[DrawNode], edges: &[DrawEdge]) -> Drawing {
    if nodes.is_empty() {
        return nothing_to_draw(title);
    }
    // Self-loops are left out: they say nothing about where the data goes next.
    let mut edges: Vec<&DrawEdge> = edges
        .iter()
        .filter(|e| e.from < nodes.len() && e.to < nodes.len() && e.from != e.to)
        .collect();
    // Highlighted edges last, so they are painted over the dimmed ones.
    edges.sort_by_key(|e| e.highlighted);
    let pairs: Vec<(usize, usize)> = edges.iter().map(|e| (e.from, e.to)).collect();
    let layout = layout(nodes, &pairs);
    let mut svg = String::with_capacity(800 + 450 * nodes.len() + 160 * edges.len());
    match render(&mut svg, title, nodes, &edges, &layout) {
        Ok(()) => Drawing {
            svg,
            width: layout.width,
            height: layout.height,
        },
        // Writing into a String cannot fail; this only keeps `draw` total.
        Err(fmt::Error) => nothing_to_draw(title),
    }
}

struct Layout {
    /// Centre of each node, by index into the nodes slice.
    pos: Vec<(f64, f64)>,
    width: u32,
    height: u32,
}

/// Columns by layer, rows ordered by the barycentre heuristic (as in Sugiyama).
fn layout(nodes: &[DrawNode], pairs: &[(usize, usize)]) -> Layout {
    let mut layers: Vec<i32> = nodes.iter().map(|n| n.layer).collect();
    layers.sort_unstable();
    layers.dedup();
    let column_of: Vec<usize> = nodes
        .iter()
        .map(|n| layers.binary_search(&n.layer).unwrap_or(0))
        .collect();
    let mut columns = vec![Vec::new(); layers.len()];
    for (n, &c) in column_of.iter().enumerate() {
        columns[c].push(n);
    }
    let mut neighbours = vec![Vec::new(); nodes.len()];
    for &(a, b) in pairs {
        neighbours[a].push(b);
        neighbours[b].push(a);
    }
    let mut row = vec![0; nodes.len()];
    for column in &mut columns {
        column.sort_by(|&a, &b| by_name(nodes, a, b));
        for (r, &n) in column.iter().enumerate() {
            row[n] = r;
        }
    }
    let mut sweep = Sweep {
        nodes,
        column_of,
        neighbours,
        columns,
        row,
    };
    let count = layers.len();
    for _ in 0..SWEEPS {
        for c in 1..count {
            sweep.reorder(c, c - 1);
        }
        for c in (0..count.saturating_sub(1)).rev() {
            sweep.reorder(c, c + 1);
        }
    }

    let max_rows = sweep.columns.iter().map(Vec::len).max().unwrap_or(0);
    let content_w = count.saturating_sub(1) as f64 * COLUMN_SPACING;
    let content_h = max_rows.saturating_sub(1) as f64 * ROW_SPACING;
    let width = (content_w + 2.0 * PAD_X).max(MIN_WIDTH);
    let height = (PAD_TOP + content_h + PAD_BOTTOM).max(MIN_HEIGHT);
    // Centred when the minimum size leaves slack.
    let x0 = (width - content_w) / 2.0;
    let y0 = PAD_TOP + (height - PAD_TOP - content_h - PAD_BOTTOM) / 2.0;
    let mut pos = vec![(0.0, 0.0); nodes.len()];
    for (c, column) in sweep.columns.iter().enumerate() {
        // Short columns sit mid-height, near the nodes they connect to.
        let shift = (max_rows - column.len()) as f64 / 2.0;
        for (r, &n) in column.iter().enumerate() {
            let y = y0 + (r as f64 + shift) * ROW_SPACING;
            pos[n] = (x0 + c as f64 * COLUMN_SPACING, y);
        }
    }
    Layout {
        pos,
        width: width.ceil() as u32,
        height: height.ceil() as u32,
    }
}

/// Alphabetical where the layout does not care; keys last so that equal names
/// still come out in the same order every time.
fn by_name(nodes: &[DrawNode], a: usize, b: usize) -> Ordering {
    let (a, b) = (&nodes[a], &nodes[b]);
    a.name.cmp(&b.name).then_with(|| a.key.cmp(&b.key))
}

struct Sweep<'a> {
    nodes: &'a [DrawNode],
    column_of: Vec<usize>,
    neighbours: Vec<Vec<usize>>,
    columns: Vec<Vec<usize>>,
    row: Vec<usize>,
}

impl Sweep<'_> {
    /// Orders `column` by where its neighbours sit in `reference`, which pulls
    /// connected nodes level with each other and so undoes crossings.
    fn reorder(&mut self, column: usize, reference: usize) {
        let Some(members) = self.columns.get(column) else {
            return;
        };
        let mut keyed: Vec<(f64, usize)> = members
            .iter()
            .map(|&n| (self.barycentre(n, reference), n))
            .collect();
        keyed.sort_by(|a, b| {
            let by_place = a.0.total_cmp(&b.0);
            by_place.then_with(|| by_name(self.nodes, a.1, b.1))
        });
        for (r, &(_, n)) in keyed.iter().enumerate() {
            self.row[n] = r;
        }
        self.columns[column] = keyed.into_iter().map(|(_, n)| n).collect();
    }

    fn barycentre(&self, n: usize, reference: usize) -> f64 {
        let (sum, count) = self.neighbours[n]
            .iter()
            .filter(|&&m| self.column_of[m] == reference)
            .fold((0.0, 0_usize), |(s, c), &m| (s + self.row[m] as f64, c + 1));
        // A node with no neighbour there keeps its place instead of sinking to the top.
        if count == 0 {
            self.row[n] as f64
        } else {
            sum / count as f64
        }
    }
}

fn render(
    out: &mut String,
    title: &str,
    nodes: &[DrawNode],
    edges: &[&DrawEdge],
    layout: &Layout,
) -> fmt::Result {
    let (w, h) = (layout.width, layout.height);
    write!(
        out,
        r#"{SVG_OPEN} width="{w}" height="{h}" viewBox="0 0 {w} {h}"><title id="graph-title">{}</title><defs>"#,
        escape(title)
    )?;
    // Arrowheads in user units, so thick highlighted edges do not get huge heads.
    for (id, colour) in [("arrow", "#8a8a8a"), ("arrow-hl", "#333")] {
        write!(
            out,
            r#"<marker id="{id}" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="8" markerHeight="8" orient="auto"><path d="M0,0L10,5L0,10z" fill="{colour}"/></marker>"#
        )?;
    }
    // Dimming only means something when there is a highlighted set to contrast.
    let dim = nodes.iter().any(|n| n.highlighted) || edges.iter().any(|e| e.highlighted);
    out.push_str(r#"</defs><g class="edges" fill="none">"#);
    for edge in edges {
        let (stroke, width, marker) = if edge.highlighted {
            ("#333", 2.5, "arrow-hl")
        } else {
            ("#8a8a8a", 1.2, "arrow")
        };
        let faded = dim && !edge.highlighted;
        let opacity = if faded { r#" opacity="0.25""# } else { "" };
        let d = edge_path(layout.pos[edge.from], layout.pos[edge.to]);
        let dash = if edge.seen {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        write!(
            out,
            r#"<path class="edge" d="{d}" stroke="{stroke}" stroke-width="{width:.1}" marker-end="url(#{marker})"{dash}{opacity}><title>{}</title></path>"#,
            escape(edge.origin)
        )?;
    }
    out.push_str(r#"</g><g class="nodes">"#);
    for (node, &(x, y)) in nodes.iter().zip(&layout.pos) {
        write_node(out, node, x, y, dim)?;
    }
    out.push_str("</g></svg>");
    Ok(())
}

fn write_node(out: &mut String, node: &DrawNode, x: f64, y: f64, dim: bool) -> fmt::Result {
    let (class, stroke, width) = if node.focus {
        ("node focus", "#111", 4.0)
    } else if node.highlighted {
        ("node highlighted", "#222", 2.5)
    } else {
        ("node", "#555", 1.0)
    };
    let faded = dim && !node.focus && !node.highlighted;
    let opacity = if faded { r#" opacity="0.35""# } else { "" };
    let label = node.label.as_deref().unwrap_or("unlabelled");
    let tooltip = format!("{} ({}) — {label}", node.name, node.kind);
    let fill = label_colour(node.rank, node.ranks);
    let weight = if node.focus {
        r#" font-weight="bold""#
    } else {
        ""
    };
    write!(
        out,
        r##"<a href="{}" class="{class}"{opacity}><title>{}</title>{} fill="{fill}" stroke="{stroke}" stroke-width="{width:.1}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#222"{weight}>{}</text></a>"##,
        escape(&node.href),
        escape(&tooltip),
        shape_open(kind_shape(&node.kind), x, y),
        y + 28.0,
        escape(&truncate(&node.name)),
    )
}

/// The shape element centred on (x, y), left open for the caller's style attributes.
fn shape_open(shape: &str, x: f64, y: f64) -> String {
    let (l, t, r, b) = (x - HALF, y - 11.0, x + HALF, y + 11.0);
    match shape {
        "circle" => format!(r#"<circle cx="{x:.1}" cy="{y:.1}" r="14""#),
        "ellipse" => format!(r#"<ellipse cx="{x:.1}" cy="{y:.1}" rx="16" ry="11""#),
        "rect" => format!(r#"<rect x="{l:.1}" y="{t:.1}" width="32" height="22""#),
        "round-rect" => format!(r#"<rect x="{l:.1}" y="{t:.1}" width="32" height="22" rx="7""#),
        // The top ellipse whole (front arc, then back), then the body below it.
        "cylinder" => format!(
            r#"<path d="M{:.1},{:.1}a13,4 0 0 0 26,0a13,4 0 0 0 -26,0v18a13,4 0 0 0 26,0v-18""#,
            x - 13.0,
            y - 9.0
        ),
        "parallelogram" => format!(
            r#"<polygon points="{:.1},{t:.1} {r:.1},{t:.1} {:.1},{b:.1} {l:.1},{b:.1}""#,
            l + 6.0,
            r - 6.0
        ),
        _ => {
            let (sides, start) = match shape {
                "triangle" => (3_u32, -90.0),
                "triangle-down" => (3, 90.0),
                "diamond" => (4, -90.0),
                "pentagon" => (5, -90.0),
                "hexagon" => (6, 0.0),
                "square" => (4, 45.0),
                _ => (8, 22.5),
            };
            let points: Vec<String> = (0..sides)
                .map(|k| {
                    let a = (start + 360.0 * f64::from(k) / f64::from(sides)).to_radians();
                    format!("{:.1},{:.1}", x + HALF * a.cos(), y + HALF * a.sin())
                })
                .collect();
            format!(r#"<polygon points="{}""#, points.join(" "))
        }
    }
}

/// From the right side of the source to the left side of the target, leaving
/// and arriving horizontally so that the flow reads left to right.
fn edge_path(from: (f64, f64), to: (f64, f64)) -> String {
    let (x1, y1) = (from.0 + HALF, from.1);
    let (x2, y2) = (to.0 - HALF, to.1);
    // Edges within a column or going backwards get a fixed reach, so they loop
    // out and back in rather than cutting straight through the shapes.
    let reach = if x2 > x1 {
        (x2 - x1) / 2.0
    } else {
        COLUMN_SPACING / 3.0
    };
    let (c1, c2) = (x1 + reach, x2 - reach);
    format!("M{x1:.1},{y1:.1} C{c1:.1},{y1:.1} {c2:.1},{y2:.1} {x2:.1},{y2:.1}")
}

fn nothing_to_draw(title: &str) -> Drawing {
    let svg = format!(
        r##"{SVG_OPEN} width="300" height="120" viewBox="0 0 300 120"><title id="graph-title">{}</title><text x="150" y="64" text-anchor="middle" fill="#555">nothing to draw</text></svg>"##,
        escape(title)
    );
    Drawing {
        svg,
        width: 300,
        height: 120,
    }
}

/// Long names would run into the next column; the full name is in the tooltip.
fn truncate(name: &str) -> String {
    if name.chars().count() <= NAME_CHARS {
        return name.to_owned();
    }
    let mut short: String = name.chars().take(NAME_CHARS - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(key: &str, layer: i32) -> DrawNode {
        DrawNode {
            key: key.to_owned(),
            name: key.to_owned(),
            kind: "data_source".to_owned(),
            label: Some("General".to_owned()),
            rank: Some(2),
            ranks: 5,
            layer,
            focus: layer == 0,
            highlighted: false,
            href: format!("/lineage?node={key}"),
        }
    }

    fn nodes_at(keys: &[(&str, i32)]) -> Vec<DrawNode> {
        keys.iter().map(|&(key, layer)| node(key, layer)).collect()
    }

    fn edges(pairs: &[(usize, usize)]) -> Vec<DrawEdge> {
        let edge = |(from, to): (usize, usize)| DrawEdge {
            from,
            to,
            highlighted: false,
            origin: "catalog",
            seen: false,
        };
        pairs.iter().copied().map(edge).collect()
    }

    #[test]
    fn upstream_is_left_of_focus_is_left_of_downstream() {
        let nodes = nodes_at(&[("down", 1), ("focus", 0), ("up", -1), ("far", -2)]);
        let pos = layout(&nodes, &[(3, 2), (2, 1), (1, 0)]).pos;
        assert!(pos[3].0 < pos[2].0);
        assert!(pos[2].0 < pos[1].0);
        assert!(pos[1].0 < pos[0].0);
    }

    #[test]
    fn barycentre_puts_a_node_level_with_its_neighbour() {
        // By name alone "m" would sit above "n", crossing a→n and b→m.
        let nodes = nodes_at(&[("f", 0), ("a", 1), ("b", 1), ("m", 2), ("n", 2)]);
        let pos = layout(&nodes, &[(0, 1), (0, 2), (1, 4), (2, 3)]).pos;
        assert!(pos[1].1 < pos[2].1);
        assert!(pos[4].1 < pos[3].1, "n should follow a to the top");
    }

    #[test]
    fn text_and_links_are_escaped() {
        let mut n = node("x", 0);
        n.name = r#"<&">"#.to_owned();
        n.href = "/lineage?a=1&b=2".to_owned();
        let svg = draw("t <&>", &[n], &[]).svg;
        assert!(svg.contains("&lt;&amp;&quot;&gt;"));
        assert!(svg.contains(r#"href="/lineage?a=1&amp;b=2""#));
        assert!(svg.contains("t &lt;&amp;&gt;"));
        assert!(!svg.contains(r#"<&">"#));
    }

    #[test]
    fn label_colours() {
        assert_eq!(label_colour(Some(4), 5), "#d62728");
        assert_eq!(label_colour(Some(2), 3), "#d62728");
        assert_eq!(label_colour(Some(9), 5), "#d62728");
        assert_eq!(label_colour(Some(0), 5), "#4e79a7");
        assert_eq!(label_colour(None, 5), "#9e9e9e");
        assert_eq!(label_colour(Some(3), 0), "#4e79a7");
    }

    #[test]
    fn empty_input_says_so() {
        let d = draw("empty", &[], &[]);
        assert!(d.svg.contains("nothing to draw"));
        assert!(d.width >= 300 && d.height >= 120);
    }

    #[test]
    fn edges_seen_in_telemetry_are_dashed_and_say_their_origin() {
        let nodes = nodes_at(&[("a", 0), ("b", 1), ("c", 2)]);
        let mut edges = edges(&[(0, 1), (1, 2)]);
        edges[1].origin = "otel";
        edges[1].seen = true;
        let d = draw("t", &nodes, &edges);
        assert_eq!(d.svg.matches("stroke-dasharray").count(), 1);
        assert!(
            d.svg
                .contains(r#"stroke-dasharray="5 3"><title>otel</title></path>"#),
            "{}",
            d.svg
        );
        assert!(d.svg.contains("<title>catalog</title>"));
    }

    #[test]
    fn bad_edge_index_is_skipped() {
        let nodes = [node("a", 0), node("b", 1)];
        let d = draw("t", &nodes, &edges(&[(0, 7), (9, 1), (0, 1)]));
        assert_eq!(d.svg.matches(r#"class="edge""#).count(), 1);
    }

    #[test]
    fn every_node_is_a_link_with_a_title() {
        let mut nodes = nodes_at(&[("up", -1), ("focus", 0), ("down", 1), ("side", 1)]);
        nodes[2].highlighted = true;
        nodes[3].kind = "something_new".to_owned();
        nodes[3].name = "a very long name that will not fit in a column".to_owned();
        let d = draw("t", &nodes, &edges(&[(0, 1), (1, 2), (2, 3), (3, 0)]));
        assert_eq!(d.svg.matches("<a href=").count(), nodes.len());
        // A title for every node, and for every edge its origin.
        let drawn_edges = d.svg.matches(r#"class="edge""#).count();
        assert_eq!(d.svg.matches("<title>").count(), nodes.len() + drawn_edges);
        assert!(d.svg.contains(">a very long name that w…</text>"));
        assert!(
            d.svg
                .contains("<title>a very long name that will not fit in a column (")
        );
        assert!(
            d.svg
                .starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg" role="group""#)
        );
        assert!(d.width >= 300 && d.height >= 120);
    }
}
