//! productpage's HTML: the index and the product page.
//!
//! The markup keeps the sample's hooks that Istio's tasks and tests look for: the bootstrap
//! classes `glyphicon glyphicon-star` / `glyphicon glyphicon-star-empty` inside a
//! `<font color="black|red">`, and the "Error fetching product ..." headings. Each star also
//! carries a visible character, so the page reads right without bootstrap's stylesheet.

use std::fmt::Write as _;

use serde_json::Value;

use super::productpage::Fetched;
use super::Upstreams;

pub struct ProductView<'a> {
    pub user: Option<&'a str>,
    pub title: &'a str,
    /// Trusted markup, from the catalogue.
    pub description_html: &'a str,
    pub details: &'a Fetched,
    pub reviews: &'a Fetched,
}

const STYLE: &str = "body{font-family:Helvetica,Arial,sans-serif;margin:0}\
nav{background:#222;color:#ddd;padding:10px 20px;display:flex;justify-content:space-between}\
nav a{color:#fff}.container{padding:0 20px}.row{display:flex;gap:40px}.col{flex:1}\
.text-primary{color:#337ab7}.text-center{text-align:center}\
blockquote{border-left:4px solid #eee;margin:10px 0;padding:5px 15px}dt{font-weight:bold}\
.modal{border:1px solid #ccc;padding:10px;margin:10px 0;max-width:300px}";

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(title)
    )
}

/// `/` and `/index.html`: what productpage calls, and two ways in.
pub fn index(up: &Upstreams) -> String {
    let mut s = head("Simple Bookstore App");
    s.push_str("<div class=\"container\">\n<h3>Hello! This is a simple bookstore application consisting of three services as shown below</h3>\n");
    s.push_str("<table class=\"table table-condensed table-bordered table-hover\">\n");
    s.push_str("<tr><th>name</th><td>http://");
    s.push_str(&escape(&up.details));
    s.push_str("</td></tr>\n<tr><th>endpoint</th><td>details</td></tr>\n<tr><th>children</th><td><table class=\"table table-condensed table-bordered table-hover\">\n<tr><th>name</th><th>endpoint</th><th>children</th></tr>\n");
    let _ = writeln!(
        s,
        "<tr><td>http://{}</td><td>details</td><td></td></tr>",
        escape(&up.details)
    );
    let _ = writeln!(
        s,
        "<tr><td>http://{}</td><td>reviews</td><td><table class=\"table table-condensed table-bordered table-hover\"><tr><th>name</th><th>endpoint</th><th>children</th></tr><tr><td>http://{}</td><td>ratings</td><td></td></tr></table></td></tr>",
        escape(&up.reviews),
        escape(&up.ratings)
    );
    s.push_str("</table></td></tr>\n</table>\n");
    s.push_str("<p><h4>Click on one of the links below to auto generate a request to the backend as a real user or a tester</h4></p>\n");
    s.push_str("<p><a href=\"/productpage?u=normal\">Normal user</a></p>\n");
    s.push_str("<p><a href=\"/productpage?u=test\">Test user</a></p>\n");
    s.push_str("</div>\n</body>\n</html>\n");
    s
}

/// `/productpage`.
pub fn product(v: &ProductView<'_>) -> String {
    let mut s = head("Simple Bookstore App");
    s.push_str("<nav class=\"navbar navbar-inverse navbar-static-top\">\n<a class=\"navbar-brand\" href=\"#\">BookInfo Sample</a>\n");
    match v.user {
        Some(user) => {
            let _ = writeln!(
                s,
                "<p class=\"navbar-text navbar-right\"><i class=\"glyphicon glyphicon-user\" aria-hidden=\"true\"></i>\
                 <span style=\"padding-left: 5px;\">{} ( <a href=\"logout\">sign out</a> )</span></p>",
                escape(user)
            );
        }
        None => s.push_str(
            "<form class=\"modal\" id=\"login-modal\" method=\"post\" action=\"login\">\n\
             <input type=\"text\" name=\"username\" placeholder=\"User Name\" required>\n\
             <input type=\"password\" name=\"passwd\" placeholder=\"Password\">\n\
             <button type=\"submit\" class=\"btn btn-default navbar-btn navbar-right\">Sign in</button>\n\
             </form>\n",
        ),
    }
    s.push_str("</nav>\n<div class=\"container\">\n");
    let _ = writeln!(
        s,
        "<h3 class=\"text-center text-primary\">{}</h3>\n<p>Summary: {}</p>",
        escape(v.title),
        v.description_html
    );
    s.push_str("<div class=\"row\">\n<div class=\"col col-md-6\">\n");
    details(&mut s, v.details);
    s.push_str("</div>\n<div class=\"col col-md-6\">\n");
    reviews(&mut s, v.reviews);
    s.push_str("</div>\n</div>\n</div>\n</body>\n</html>\n");
    s
}

fn details(s: &mut String, d: &Fetched) {
    if !d.ok() {
        s.push_str("<h4 class=\"text-center text-primary\">Error fetching product details!</h4>\n");
        error_text(s, &d.body);
        return;
    }
    s.push_str("<h4 class=\"text-center text-primary\">Book Details</h4>\n<dl>\n");
    for (label, key) in [
        ("Type", "type"),
        ("Pages", "pages"),
        ("Publisher", "publisher"),
        ("Language", "language"),
        ("ISBN-10", "ISBN-10"),
        ("ISBN-13", "ISBN-13"),
    ] {
        let _ = writeln!(
            s,
            "<dt>{label}:</dt><dd>{}</dd>",
            escape(&scalar(d.body.get(key)))
        );
    }
    s.push_str("</dl>\n");
}

fn reviews(s: &mut String, r: &Fetched) {
    if !r.ok() {
        s.push_str("<h4 class=\"text-center text-primary\">Error fetching product reviews!</h4>\n");
        error_text(s, &r.body);
        return;
    }
    s.push_str("<h4 class=\"text-center text-primary\">Book Reviews</h4>\n");
    let empty = Vec::new();
    let list = r
        .body
        .get("reviews")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for review in list {
        let _ = writeln!(
            s,
            "<blockquote>\n<p>{}</p>\n<small>{}</small>",
            escape(&scalar(review.get("text"))),
            escape(&scalar(review.get("reviewer")))
        );
        if let Some(rating) = review.get("rating") {
            rating_markup(s, rating);
        }
        s.push_str("</blockquote>\n");
    }
    let podname = scalar(r.body.get("podname"));
    if !podname.is_empty() {
        let _ = write!(
            s,
            "<dl><dt>Reviews served by:</dt><dd><u>{}</u>",
            escape(&podname)
        );
        let cluster = scalar(r.body.get("clustername"));
        if !cluster.is_empty() && cluster != "null" {
            let _ = write!(s, " on cluster <u>{}</u>", escape(&cluster));
        }
        s.push_str("</dd></dl>\n");
    }
}

fn rating_markup(s: &mut String, rating: &Value) {
    if let Some(stars) = rating.get("stars").and_then(Value::as_u64) {
        let stars = stars.min(5);
        let color = match rating.get("color").and_then(Value::as_str) {
            Some(c) if c.chars().all(|c| c.is_ascii_alphanumeric() || c == '#') => c,
            _ => "black",
        };
        let _ = writeln!(s, "<font color=\"{color}\">");
        for _ in 0..stars {
            s.push_str("<span class=\"glyphicon glyphicon-star\">&#9733;</span>\n");
        }
        for _ in stars..5 {
            s.push_str("<span class=\"glyphicon glyphicon-star-empty\">&#9734;</span>\n");
        }
        s.push_str("</font>\n");
    } else if let Some(err) = rating.get("error") {
        let _ = writeln!(s, "<p><i>{}</i></p>", escape(&scalar(Some(err))));
    }
}

fn error_text(s: &mut String, body: &Value) {
    if let Some(e) = body.get("error") {
        let _ = writeln!(s, "<p>{}</p>", escape(&scalar(Some(e))));
    }
}

/// A JSON value as display text: strings bare, numbers as written, absent as empty.
fn scalar(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use serde_json::json;

    fn fetched(body: Value) -> Fetched {
        Fetched {
            status: StatusCode::OK,
            body,
        }
    }

    fn render(user: Option<&str>, reviews: Value) -> String {
        product(&ProductView {
            user,
            title: "T",
            description_html: "<b>d</b>",
            details: &fetched(json!({"type": "paperback", "pages": 200})),
            reviews: &fetched(reviews),
        })
    }

    #[test]
    fn stars_full_and_empty_in_the_rating_colour() {
        let page = render(
            None,
            json!({"reviews": [{"reviewer": "R", "text": "x", "rating": {"stars": 4, "color": "red"}}]}),
        );
        assert!(page.contains("<font color=\"red\">"));
        assert_eq!(page.matches("glyphicon glyphicon-star\"").count(), 4);
        assert_eq!(page.matches("glyphicon glyphicon-star-empty").count(), 1);
        assert!(page.contains("<dt>Pages:</dt><dd>200</dd>"));
    }

    #[test]
    fn upstream_text_and_user_are_escaped() {
        let page = render(
            Some("<script>"),
            json!({"reviews": [{"reviewer": "R", "text": "<img src=x>", "rating": {"stars": 1, "color": "\"><script>"}}]}),
        );
        assert!(!page.contains("<script>"));
        assert!(!page.contains("<img"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("<font color=\"black\">"));
    }

    #[test]
    fn rating_error_is_shown_instead_of_stars() {
        let page = render(
            None,
            json!({"reviews": [{"reviewer": "R", "text": "x", "rating": {"error": "Ratings service is currently unavailable"}}]}),
        );
        assert!(page.contains("Ratings service is currently unavailable"));
        assert!(!page.contains("glyphicon-star"));
    }
}
