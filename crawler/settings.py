"""Scrapy settings of the barometre crawler (polite defaults, set explicitly).

Stage: crawl. These are Scrapy's project settings (``scrapy.cfg`` points here); a crawl
started by :func:`crawler.run.run_crawl` layers the user's overrides on top (e.g. the tests
and the demo set ``DOWNLOAD_DELAY=0`` and ``AUTOTHROTTLE_ENABLED=False`` for 127.0.0.1).
Settings specific to barometre are prefixed ``BAROMETRE_`` and documented below.
"""

BOT_NAME = "barometre"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

# --- identity --------------------------------------------------------------------------
# The user agent names the tool and how to reach whoever runs it: `{contact}` is replaced by
# BAROMETRE_CONTACT (set it: `barometre crawl --contact you@lab.example`).
BAROMETRE_CONTACT = "unset (set --contact)"
BAROMETRE_USER_AGENT_TEMPLATE = (
    "barometre/0.1 (research crawler for the digital-maturity barometer of French metropolises; "
    "+https://github.com/barometre/barometre; contact: {contact})"
)
USER_AGENT = BAROMETRE_USER_AGENT_TEMPLATE.format(contact=BAROMETRE_CONTACT)

# --- politeness --------------------------------------------------------------------------
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 2
DOWNLOAD_DELAY = 1.0
RANDOMIZE_DOWNLOAD_DELAY = True
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False

# --- faults ------------------------------------------------------------------------------
DOWNLOAD_TIMEOUT = 60
RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
# Exponential backoff between retries of 5xx answers and timeouts: base * 2**attempt seconds,
# capped (crawler.middlewares.BackoffRetryMiddleware).
BAROMETRE_BACKOFF_BASE = 2.0
BAROMETRE_BACKOFF_MAX = 120.0
# A 429/503 `Retry-After` longer than this is not waited for: the URL is recorded `http-429`
# (or `http-5xx`) and the crawl goes on.
BAROMETRE_RETRY_AFTER_MAX = 600.0
REDIRECT_ENABLED = True
REDIRECT_MAX_TIMES = 10
# barometre does not use FilesPipeline (its files are named by URL hash and it refuses
# redirects by default); documents follow redirects like pages. Kept for `scrapy` users.
MEDIA_ALLOW_REDIRECTS = True
# Per-request limits come from the registry (`download_maxsize` meta = max_file_bytes).
DOWNLOAD_MAXSIZE = 50 * 1024 * 1024
DOWNLOAD_WARNSIZE = 0

# Items of one response processed in parallel by the pipeline. The store pipeline is
# synchronous, so Scrapy's default (100) only costs: it sets up 100 cooperative tasks per
# response even when the response yields one item.
CONCURRENT_ITEMS = 8

# --- crawl order -------------------------------------------------------------------------
# Depth is handled per metropolis by the spider (registry limits); Scrapy's own depth limit
# stays off. Priority comes from the relevance score.
DEPTH_LIMIT = 0
DEPTH_PRIORITY = 0
# Within one priority level, first in first out: shallow pages before deep ones (Scrapy's
# advice for broad crawls); the FIFO disk queue is also cheaper than the LIFO one.
SCHEDULER_DISK_QUEUE = "scrapy.squeues.PickleFifoDiskQueue"
SCHEDULER_MEMORY_QUEUE = "scrapy.squeues.FifoMemoryQueue"
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
# Scrapy's fingerprint (same bytes) without a second canonicalisation of URLs the crawler
# has already normalised (crawler.urls.normalise_url).
REQUEST_FINGERPRINTER_CLASS = "crawler.spiders.base.NormalFormFingerprinter"

# --- focused crawl -----------------------------------------------------------------------
# An HTML page is stored as a document when it is a start URL or its relevance score
# (crawler.focus.page_score) reaches this threshold; other pages are only followed.
BAROMETRE_PAGE_THRESHOLD = 2.0
# Trap guards (crawler.focus.TrapGuard), per metropolis.
BAROMETRE_MAX_QUERY_VARIANTS = 50
BAROMETRE_MAX_PATTERN_URLS = 1000
# Fetch /sitemap.xml and the `Sitemap:` lines of robots.txt of every start URL's site.
BAROMETRE_USE_SITEMAPS = True
# Where the corpus store lives (set by crawler.run); None makes the spider refuse to start.
BAROMETRE_CORPUS_DIR = None
BAROMETRE_RESUME = False
# The store pipeline commits its writes in batches (crawler.state): at most this many seconds
# apart (a timer) and this many items per batch, and when the spider closes. A kill loses at
# most the open batch, whose URLs a resumed crawl fetches again. 0 seconds: commit every item.
BAROMETRE_COMMIT_SECONDS = 0.5
BAROMETRE_COMMIT_ROWS = 500
# Seconds between progress lines on stderr (0: none).
BAROMETRE_PROGRESS_INTERVAL = 10.0
# Response counts at which to record the resident memory (stats barometre/rss_mb_at_<n>).
BAROMETRE_RSS_MILESTONES: list[int] = []
# Append the final stats of each spider to this file (JSON lines), e.g. for bench/.
BAROMETRE_STATS_FILE = None

# --- shared domains --------------------------------------------------------------------
# A document found on a domain shared by a city and its metropolis (a registry entry's
# `shared_domains`) whose letterhead says neither is stored but flagged 'undecided' and left
# out of the metropolis's documents (crawler.attribution); True keeps it ('kept').
BAROMETRE_KEEP_UNDECIDED = False

# --- fetch policy ----------------------------------------------------------------------
# Requests go only to the registry entries' domains (and a dataset's own `domains`), never
# to loopback, private, link-local, multicast or reserved addresses (crawler.policy) except
# the addresses or networks listed here: the tests and the demo allow 127.0.0.1.
BAROMETRE_ALLOWED_ADDRESSES: list[str] = []

DOWNLOADER_MIDDLEWARES = {
    # First of all, before robots.txt is asked for: where a request may go at all. Scrapy's
    # own offsite filter (50) is bypassed by the spiders' requests (meta allow_offsite): it
    # knows one list of domains per spider, not one per registry entry and dataset.
    "crawler.policy.FetchPolicyMiddleware": 40,
    # After RobotsTxtMiddleware (100): a disallowed URL spends no page budget.
    "crawler.middlewares.CrawlGateMiddleware": 120,
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "crawler.middlewares.BackoffRetryMiddleware": 550,
}
SPIDER_MIDDLEWARES = {
    # Closest to the spiders: fetch records are written as they come (crawler.pipelines).
    "crawler.pipelines.FetchRecordMiddleware": 1000,
}
ITEM_PIPELINES = {
    "crawler.pipelines.StorePipeline": 300,
}
EXTENSIONS = {
    # Opens the corpus store for the crawl and closes it when the spider closes.
    "crawler.state.CrawlStateExtension": 100,
    "crawler.extensions.ProgressLog": 500,
}

FEED_EXPORT_ENCODING = "utf-8"
LOG_LEVEL = "INFO"
# Scrapy's, without the per-item "Scraped from" record when LOG_LEVEL is above DEBUG (where
# nobody sees it, but Scrapy builds it for every item: here, every fetch).
LOG_FORMATTER = "crawler.extensions.QuietLogFormatter"
