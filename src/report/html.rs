//! One self-contained HTML document: headings, paragraphs, [`Table`]s and [`Figure`]s as
//! inline SVG, with an inline style sheet and script (hover values on charts, tables sorted
//! by a click on a header). Nothing is fetched: no external style sheet, script, font or
//! image, so the file can be opened offline or mailed.

use super::{Figure, Table};
use crate::error::Result;

/// An HTML document being built.
#[derive(Debug, Clone)]
pub struct HtmlDoc {
    title: String,
    body: String,
    tables: usize,
}

/// `s` with `&`, `<`, `>`, `"` and `'` escaped, for text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl HtmlDoc {
    /// An empty document titled `title` (its `<title>` and first heading).
    pub fn new(title: &str) -> Self {
        Self {
            title: title.to_string(),
            body: format!("<h1>{}</h1>\n", escape(title)),
            tables: 0,
        }
    }

    /// A heading of level 2 or 3 (`level` is clamped).
    pub fn heading(&mut self, level: u8, text: &str) -> &mut Self {
        let l = level.clamp(2, 3);
        self.body += &format!("<h{l}>{}</h{l}>\n", escape(text));
        self
    }

    /// A paragraph of plain text.
    pub fn paragraph(&mut self, text: &str) -> &mut Self {
        self.body += &format!("<p>{}</p>\n", escape(text));
        self
    }

    /// A paragraph with the class `note` (a warning, a remark).
    pub fn note(&mut self, text: &str) -> &mut Self {
        self.body += &format!("<p class=\"note\">{}</p>\n", escape(text));
        self
    }

    /// A table under its title as a level-3 heading; its headers sort it when clicked.
    pub fn table(&mut self, t: &Table) -> &mut Self {
        self.tables += 1;
        let n = self.tables;
        self.heading(3, &t.title);
        let mut s = format!(
            "<div class=\"scroll\"><table class=\"sortable\" id=\"table-{n}\" data-title=\"{}\">\n<thead><tr>",
            escape(&t.title)
        );
        for h in &t.headers {
            s += &format!("<th>{}</th>", escape(h));
        }
        s += "</tr></thead>\n<tbody>\n";
        for r in &t.rows {
            s += "<tr>";
            for c in 0..t.headers.len().max(r.len()) {
                let cell = r.get(c).map_or("", String::as_str);
                // Markdown emphasis of the summary (`**total**`) reads as a bold cell here.
                let bold = cell.starts_with("**");
                let cell = cell.replace("**", "");
                let num = super::leading_number(&cell).is_some();
                let class = if num { " class=\"num\"" } else { "" };
                let text = escape(&cell);
                let text = if bold { format!("<b>{text}</b>") } else { text };
                s += &format!("<td{class}>{text}</td>");
            }
            s += "</tr>\n";
        }
        s += "</tbody></table></div>\n";
        self.body += &s;
        self
    }

    /// A figure: the chart as inline SVG, its values for the hover box, its caption.
    ///
    /// # Errors
    ///
    /// As [`super::AnyChart::to_svg`].
    pub fn figure(&mut self, f: &Figure) -> Result<&mut Self> {
        let svg = f.chart.to_svg()?;
        let hover = serde_json::json!({
            "w": svg.size.0,
            "x": svg.x_px,
            "labels": svg.x_labels,
            "series": svg.series.iter().map(|s| serde_json::json!({
                // NaN (a missing value) becomes null.
                "name": s.name, "values": s.values,
            })).collect::<Vec<_>>(),
        });
        let body = svg.svg.replacen("<svg ", "<svg class=\"chart\" ", 1);
        self.body += &format!(
            "<figure class=\"chart\" id=\"fig-{}\" data-hover=\"{}\">\n{body}<div class=\"tip\"></div>\n<figcaption>{}</figcaption>\n</figure>\n",
            escape(&f.stem),
            escape(&hover.to_string()),
            escape(&f.alt),
        );
        Ok(self)
    }

    /// The whole document.
    pub fn finish(&self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{}\
             <script>{SCRIPT}</script>\n</body>\n</html>\n",
            escape(&self.title),
            self.body
        )
    }
}

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#1e1e1e;line-height:1.4}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}h3{font-size:1.05em;margin-top:1.4em}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.88em;margin:.4em 0}
th,td{border:1px solid #d8d8d8;padding:.25em .55em;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;user-select:none}th.asc:after{content:" \25B2"}th.desc:after{content:" \25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafafa}
figure.chart{position:relative;margin:1em 0}
svg.chart{width:100%;height:auto;max-width:960px;display:block}
figcaption{font-size:.85em;color:#555}
.tip{position:absolute;display:none;pointer-events:none;background:rgba(255,255,255,.96);border:1px solid #999;border-radius:4px;padding:.3em .5em;font-size:.82em;box-shadow:0 1px 4px rgba(0,0,0,.2);white-space:nowrap}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:.4em .7em}
.good{color:#1a7f37}.bad{color:#c62828}
"#;

const SCRIPT: &str = r#"
(function(){
function esc(s){return String(s).replace(/[&<>"']/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c];});}
function fmt(v){var a=Math.abs(v);return a>=100?v.toFixed(0):a>=10?v.toFixed(1):a>=1?v.toFixed(2):v.toPrecision(3);}
document.querySelectorAll('figure.chart').forEach(function(f){
  var d=JSON.parse(f.getAttribute('data-hover')),svg=f.querySelector('svg'),tip=f.querySelector('.tip');
  if(!svg||!d.x.length)return;
  svg.addEventListener('mousemove',function(e){
    var r=svg.getBoundingClientRect(),x=(e.clientX-r.left)*d.w/r.width,b=0;
    for(var i=1;i<d.x.length;i++)if(Math.abs(d.x[i]-x)<Math.abs(d.x[b]-x))b=i;
    var h='<b>'+esc(d.labels[b])+'</b>';
    d.series.forEach(function(s){var v=s.values[b];h+='<br>'+esc(s.name)+': '+(v===null?'n/a':fmt(v));});
    tip.innerHTML=h;tip.style.display='block';
    var fr=f.getBoundingClientRect();
    tip.style.left=Math.min(e.clientX-fr.left+14,fr.width-tip.offsetWidth)+'px';
    tip.style.top=(e.clientY-fr.top+14)+'px';
  });
  svg.addEventListener('mouseleave',function(){tip.style.display='none';});
});
function key(t){t=t.trim();if(t===''||t==='\u2014'||t==='-'||t==='n/a')return null;
  var m=/^[+-]?[\d,]*\.?\d+(e[+-]?\d+)?/i.exec(t);
  if(m&&!/^[a-z][a-z0-9]/i.test(t.slice(m[0].length)))return parseFloat(m[0].replace(/,/g,''));return t.toLowerCase();}
document.querySelectorAll('table.sortable').forEach(function(t){
  var ths=t.querySelectorAll('th');
  ths.forEach(function(th,c){th.addEventListener('click',function(){
    var desc=th.classList.contains('asc');ths.forEach(function(o){o.classList.remove('asc','desc');});
    th.classList.add(desc?'desc':'asc');
    var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){var x=key(a.cells[c]?a.cells[c].textContent:''),y=key(b.cells[c]?b.cells[c].textContent:'');
      if(x===null)return y===null?0:1;if(y===null)return -1;
      var n=typeof x==='number',m=typeof y==='number',r=n&&m?x-y:n?-1:m?1:(x<y?-1:x>y?1:0);return desc?-r:r;});
    rows.forEach(function(r){body.appendChild(r);});
  });});
});
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_attributes() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let mut d = HtmlDoc::new("A & B");
        d.table(&Table::new(
            "t <1>",
            &["a", "b"],
            vec![vec!["**total**".into(), "1.5".into()]],
        ));
        let h = d.finish();
        assert!(h.contains("<title>A &amp; B</title>"), "{h}");
        assert!(
            h.contains("<td><b>total</b></td><td class=\"num\">1.5</td>"),
            "{h}"
        );
        assert!(h.contains("<h3>t &lt;1&gt;</h3>"), "{h}");
    }
}
