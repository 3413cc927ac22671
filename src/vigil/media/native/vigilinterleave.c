/* vigilinterleave: RTP packets out of an RTSP-over-TCP byte stream (RFC 2326 section 10.12).
 *
 * Copyright (C) The Vigil authors
 *
 * This library is free software; you can redistribute it and/or modify it under the terms of
 * the GNU Lesser General Public License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 *
 * This library is distributed in the hope that it will be useful, but WITHOUT ANY WARRANTY;
 * without even the implied warranty of MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.
 * See the GNU Lesser General Public License for more details.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * WHY
 * ---
 * rtspsrc reads every interleaved RTP packet with two recv() calls through GstRTSPConnection
 * (header, then body), creates and destroys an eventfd per wait, and runs rtpbin per packet.
 * Reading the same socket with "fdsrc blocksize=65536" costs less than half as much. Vigil
 * therefore does the RTSP exchange in Python and hands the connected socket to
 *
 *   fdsrc fd=N blocksize=65536 do-timestamp=true ! vigilinterleave caps="application/x-rtp,..."
 *       ! vigilrtpstamp ! rtph264depay ! h264parse ! ...
 *
 * THE BYTE STREAM
 * ---------------
 * Units follow each other with no separator; chunks (socket reads) cut them anywhere:
 *   '$' channel(1) length(2, big endian) payload(length)     an interleaved frame
 *   "RTSP/1.0 200 OK\r\n...\r\n\r\n" + Content-Length bytes  a reply (to the keep-alives)
 *   "METHOD uri RTSP/1.0\r\n...\r\n\r\n" + body              a request from the server
 * Frames of "rtp-channel" go out; frames of "rtcp-channel" and of any other channel are counted
 * and dropped; RTSP messages are skipped and announced with a "vigil-rtsp-message" element
 * message (first-line, status: 0 for a request, cseq: -1 when absent). Anything else is
 * garbage, skipped up to the next "RTSP/1.0 " reply or '$' frame that looks like ours (an RTP
 * or RTCP header as expected, and another '$' or 'R' right after the frame), with a warning
 * the first time and an error past "max-garbage" bytes without a valid unit.
 *
 * COST
 * ----
 * Per socket read: one map, one buffer list, one push (gst_pad_push_list), two object locks
 * (settings in, counters out). Per packet: one sub-buffer (gst_buffer_copy_region of the read's
 * memory, no copy of the bytes). Copies happen only for a frame split between two reads (the
 * GstAdapter joins its pieces) and when a read ends inside a unit's first bytes: the few bytes
 * kept are joined to the first HEAD_MERGE bytes of the next read (more when resynchronising
 * after garbage, which looks at a whole frame and the byte after it).
 *
 * TIME
 * ----
 * Every packet carries the PTS/DTS of the read that completed it (fdsrc do-timestamp=true: the
 * running time at arrival). vigilrtpstamp takes the first one as its base and derives the rest
 * from RTP timestamps. An upstream BYTES segment (fdsrc, appsrc) becomes a TIME segment from 0,
 * so running time equals PTS.
 */

#include <string.h>

#include <gst/gst.h>
#include <gst/base/gstadapter.h>

GST_DEBUG_CATEGORY_STATIC (vigil_interleave_debug);
#define GST_CAT_DEFAULT vigil_interleave_debug

#define VIGIL_TYPE_INTERLEAVE (vigil_interleave_get_type ())
G_DECLARE_FINAL_TYPE (VigilInterleave, vigil_interleave, VIGIL, INTERLEAVE, GstElement)
GST_ELEMENT_REGISTER_DECLARE (vigilinterleave);

#define DEFAULT_RTP_CHANNEL   0
#define DEFAULT_RTCP_CHANNEL  1
#define DEFAULT_MAX_GARBAGE   (1024 * 1024)
#define FRAME_HEADER          4
/* When resynchronising after garbage, a '$' counts only if the RTP/RTCP header behind it fits
 * what we expect (its first 12 bytes are looked at) and another unit starts after it. */
#define RESYNC_LOOKAHEAD      (FRAME_HEADER + 12)
#define REPLY_PREFIX          "RTSP/1.0 "
#define REPLY_PREFIX_LEN      (sizeof (REPLY_PREFIX) - 1)
#define MAX_METHOD            32
/* Longer heads are garbage; the Python client's limit for replies is larger (64 KiB), but
 * keep-alive replies and server requests are a few hundred bytes. */
#define MAX_RTSP_HEAD         (16 * 1024)
#define MAX_RTSP_BODY         (1024 * 1024)
#define HEAD_MERGE            1024
#define LIST_SIZE_HINT        16

enum
{
  PROP_0,
  PROP_CAPS,
  PROP_RTP_CHANNEL,
  PROP_RTCP_CHANNEL,
  PROP_MAX_GARBAGE,
  PROP_BYTES,
  PROP_PACKETS,
  PROP_RTCP_PACKETS,
  PROP_OTHER_PACKETS,
  PROP_RTSP_MESSAGES,
  PROP_GARBAGE_BYTES,
  PROP_LISTS,
};

typedef enum
{
  /* At the start of a unit. If the adapter holds bytes, they are the unit's first bytes: the
   * last read ended before we could tell what it is. */
  STATE_BOUNDARY,
  /* Inside an RTP frame's payload split across reads: the adapter holds what came so far. */
  STATE_RTP_BODY,
  /* Inside a payload or message body that is dropped. */
  STATE_SKIP,
} ParseState;

/* What one read added to the counters; published under the object lock once per read. */
typedef struct
{
  guint64 bytes;
  guint64 packets;
  guint64 rtcp_packets;
  guint64 other_packets;
  guint64 garbage_bytes;
} Tally;

/* One read being parsed: where its packets go and what they are stamped with. */
typedef struct
{
  GstBufferList *list;
  GstClockTime pts;
  GstClockTime dts;
  guint rtp_channel;
  guint rtcp_channel;
  guint64 max_garbage;
  Tally tally;
} Chunk;

struct _VigilInterleave
{
  GstElement parent;

  GstPad *sinkpad;
  GstPad *srcpad;

  /* Streaming-thread state: chain, serialized events (stream lock held) and state changes
   * while no data flows. */
  GstAdapter *adapter;
  ParseState state;
  gsize remaining;              /* bytes left of the body in STATE_RTP_BODY / STATE_SKIP */
  gsize need;                   /* bytes a kept unit start needs before it can be classified */
  guint64 position;             /* stream offset of the next byte to parse (for log lines) */
  gboolean in_garbage;
  guint64 garbage_run;          /* garbage bytes since the last valid unit */
  gboolean warned_garbage;
  gboolean failed;              /* posted the garbage error; refuse data until a flush */
  gboolean discont;             /* mark the next packet DISCONT */
  gboolean have_ssrc;
  guint32 ssrc;                 /* of the last RTP packet, for resynchronising */
  gint payload_type;            /* from the caps, -1 when absent */
  gboolean need_caps;
  gboolean need_segment;

  /* Shared with other threads: under the object lock. */
  gchar *caps_string;
  GstCaps *caps;                /* parsed caps_string; NULL when unset or invalid */
  gboolean caps_changed;
  guint rtp_channel;
  guint rtcp_channel;
  guint64 max_garbage;
  guint64 bytes;
  guint64 packets;
  guint64 rtcp_packets;
  guint64 other_packets;
  guint64 rtsp_messages;
  guint64 garbage_bytes;
  guint64 lists;
};

G_DEFINE_TYPE (VigilInterleave, vigil_interleave, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (vigilinterleave, "vigilinterleave", GST_RANK_NONE,
    VIGIL_TYPE_INTERLEAVE, GST_DEBUG_CATEGORY_INIT (vigil_interleave_debug, "vigilinterleave",
        0, "Vigil RTSP interleaved-stream parser"));

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS ("application/x-rtp"));

/* Forget the unit in progress (not the counters): a new stream, a flush, EOS. */
static void
reset_parser (VigilInterleave * self)
{
  gst_adapter_clear (self->adapter);
  self->state = STATE_BOUNDARY;
  self->remaining = 0;
  self->need = 0;
  self->position = 0;
  self->in_garbage = FALSE;
  self->garbage_run = 0;
  self->failed = FALSE;
  self->discont = TRUE;
  self->have_ssrc = FALSE;
}

static gsize
pending_bytes (VigilInterleave * self)
{
  return gst_adapter_available (self->adapter) + (self->state == STATE_BOUNDARY ? 0 :
      self->remaining);
}

/* --- classifying the bytes at a unit boundary ------------------------------------------- */

typedef enum
{
  UNIT_NEED_MORE,               /* cannot tell yet: keep the bytes for the next read */
  UNIT_FRAME,
  UNIT_RTSP,
  UNIT_GARBAGE,
} UnitKind;

typedef struct
{
  UnitKind kind;
  gsize length;                 /* frame header, RTSP head, garbage; NEED_MORE: bytes needed
                                 * (0: unknown) */
  guint channel;                /* UNIT_FRAME */
  gsize body;                   /* UNIT_FRAME payload length, UNIT_RTSP Content-Length */
} Unit;

typedef enum
{
  RTSP_NO,
  RTSP_MAYBE,                   /* a prefix of one: need more bytes */
  RTSP_YES,
} RtspStart;

static gboolean
is_method_char (guint8 c)
{
  return (c >= 'A' && c <= 'Z') || c == '_' || c == '-';
}

/* Does an RTSP message start at @p: "RTSP/1.0 " or, unless @replies_only, an upper-case method
 * token, a space and the first character of a URI? */
static RtspStart
rtsp_start (const guint8 * p, gsize avail, gboolean replies_only)
{
  gsize n = MIN (avail, REPLY_PREFIX_LEN);
  gsize i;

  if (memcmp (p, REPLY_PREFIX, n) == 0)
    return n == REPLY_PREFIX_LEN ? RTSP_YES : RTSP_MAYBE;
  if (replies_only || !(p[0] >= 'A' && p[0] <= 'Z'))
    return RTSP_NO;
  for (i = 1; i < avail && i <= MAX_METHOD; i++) {
    if (is_method_char (p[i]))
      continue;
    if (p[i] != ' ')
      return RTSP_NO;
    if (i + 1 == avail)
      return RTSP_MAYBE;
    return p[i + 1] > ' ' && p[i + 1] < 0x7f ? RTSP_YES : RTSP_NO;
  }
  return i > MAX_METHOD ? RTSP_NO : RTSP_MAYBE;
}

/* Length of the head up to and including "\r\n\r\n", or 0 when not within @avail bytes. */
static gsize
rtsp_head_length (const guint8 * p, gsize avail)
{
  const guint8 *end = p + avail;
  const guint8 *cr = p;

  while (end - cr >= 4 && (cr = memchr (cr, '\r', (end - cr) - 3)) != NULL) {
    if (cr[1] == '\n' && cr[2] == '\r' && cr[3] == '\n')
      return (gsize) (cr - p) + 4;
    cr++;
  }
  return 0;
}

/* The value of header @name in @head (case-insensitive name), as a non-negative integer: -1 when
 * absent, -2 when present but not a number (or too large). */
static gint64
rtsp_header_int (const guint8 * head, gsize length, const gchar * name)
{
  gsize name_len = strlen (name);
  const guint8 *line = head;
  const guint8 *end = head + length;

  while (line < end) {
    const guint8 *eol = memchr (line, '\n', end - line);
    const guint8 *v;
    gint64 value = 0;
    gboolean digits = FALSE;

    if (eol == NULL)
      eol = end;
    if ((gsize) (eol - line) > name_len + 1 && line[name_len] == ':'
        && g_ascii_strncasecmp ((const gchar *) line, name, name_len) == 0) {
      for (v = line + name_len + 1; v < eol && (*v == ' ' || *v == '\t'); v++);
      for (; v < eol && g_ascii_isdigit (*v); v++) {
        value = value * 10 + (*v - '0');
        digits = TRUE;
        if (value > G_MAXINT32)
          return -2;
      }
      for (; v < eol && (*v == ' ' || *v == '\t' || *v == '\r'); v++);
      return digits && v == eol ? value : -2;
    }
    line = eol + 1;
  }
  return -1;
}

/* In garbage, a '$' counts only when what follows looks like our RTP (version 2, the caps'
 * payload type, the SSRC seen before) or like an RTCP compound packet (version 2, SR or RR
 * first, a whole number of 32-bit words). Needs RESYNC_LOOKAHEAD bytes. */
static gboolean
plausible_frame (VigilInterleave * self, const Chunk * chunk, const guint8 * p)
{
  guint channel = p[1];
  gsize length = GST_READ_UINT16_BE (p + 2);
  const guint8 *packet = p + FRAME_HEADER;

  if ((packet[0] & 0xc0) != 0x80)
    return FALSE;
  if (channel == chunk->rtp_channel) {
    if (length < 12)
      return FALSE;
    if (self->payload_type >= 0 && (packet[1] & 0x7f) != self->payload_type)
      return FALSE;
    return !self->have_ssrc || GST_READ_UINT32_BE (packet + 8) == self->ssrc;
  }
  if (channel == chunk->rtcp_channel) {
    return length >= 8 && length % 4 == 0 && (packet[1] == 200 || packet[1] == 201)
        && (gsize) (GST_READ_UINT16_BE (packet + 2) + 1) * 4 <= length;
  }
  return FALSE;
}

/* Garbage starts at @p: how far to the next byte that could start a unit. */
static gsize
garbage_length (const guint8 * p, gsize avail)
{
  gsize i;

  for (i = 1; i < avail; i++) {
    if (p[i] == '$' || p[i] == 'R')
      return i;
  }
  return avail;
}

static Unit
classify (VigilInterleave * self, const Chunk * chunk, const guint8 * p, gsize avail)
{
  Unit unit = { UNIT_NEED_MORE, 0, 0, 0 };
  RtspStart start;

  if (p[0] == '$') {
    gsize next = avail >= FRAME_HEADER ? FRAME_HEADER + GST_READ_UINT16_BE (p + 2) : 0;

    if (!self->in_garbage) {
      /* in sync, trust any frame: other channels are legal (a track we did not set up) */
      if (avail < FRAME_HEADER) {
        unit.length = FRAME_HEADER;
        return unit;
      }
    } else if (avail < RESYNC_LOOKAHEAD) {
      unit.length = RESYNC_LOOKAHEAD;
      return unit;
    } else if (!plausible_frame (self, chunk, p)) {
      next = 0;
    } else if (avail <= next) {
      unit.length = next + 1;
      return unit;
    } else if (p[next] != '$' && p[next] != 'R') {
      next = 0;
    }
    if (next > 0) {
      unit.kind = UNIT_FRAME;
      unit.length = FRAME_HEADER;
      unit.channel = p[1];
      unit.body = next - FRAME_HEADER;
      return unit;
    }
  } else if ((start = rtsp_start (p, avail, self->in_garbage)) != RTSP_NO) {
    gsize head;
    gint64 body;

    if (start == RTSP_MAYBE)
      return unit;
    head = rtsp_head_length (p, MIN (avail, MAX_RTSP_HEAD));
    if (head == 0 && avail < MAX_RTSP_HEAD)
      return unit;
    body = head > 0 ? rtsp_header_int (p, head, "Content-Length") : -2;
    if (body == -1)
      body = 0;
    if (body >= 0 && body <= MAX_RTSP_BODY) {
      unit.kind = UNIT_RTSP;
      unit.length = head;
      unit.body = (gsize) body;
      return unit;
    }
    GST_DEBUG_OBJECT (self, "at %" G_GUINT64_FORMAT ": looks like RTSP but %s",
        self->position, head == 0 ? "has no end of head" : "has a bad Content-Length");
  }
  unit.kind = UNIT_GARBAGE;
  unit.length = garbage_length (p, avail);
  return unit;
}

/* --- acting on units ------------------------------------------------------------------- */

static void
emit (VigilInterleave * self, Chunk * chunk, GstBuffer * packet)
{
  GST_BUFFER_PTS (packet) = chunk->pts;
  GST_BUFFER_DTS (packet) = chunk->dts;
  if (G_UNLIKELY (self->discont)) {
    GST_BUFFER_FLAG_SET (packet, GST_BUFFER_FLAG_DISCONT);
    self->discont = FALSE;
  }
  if (chunk->list == NULL)
    chunk->list = gst_buffer_list_new_sized (LIST_SIZE_HINT);
  gst_buffer_list_add (chunk->list, packet);
  chunk->tally.packets++;
  GST_LOG_OBJECT (self, "packet of %" G_GSIZE_FORMAT " bytes", gst_buffer_get_size (packet));
}

static void
post_rtsp_message (VigilInterleave * self, const guint8 * head, gsize length)
{
  const guint8 *eol = memchr (head, '\r', length);
  gsize line_len = eol != NULL ? (gsize) (eol - head) : length;
  gchar *first_line = g_strndup ((const gchar *) head, line_len);
  gint status = 0;
  gint64 cseq = rtsp_header_int (head, length, "CSeq");
  GstStructure *s;

  if (line_len >= REPLY_PREFIX_LEN + 3 && memcmp (head, REPLY_PREFIX, REPLY_PREFIX_LEN) == 0) {
    const guint8 *code = head + REPLY_PREFIX_LEN;

    if (g_ascii_isdigit (code[0]) && g_ascii_isdigit (code[1]) && g_ascii_isdigit (code[2]))
      status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  }
  GST_DEBUG_OBJECT (self, "RTSP message at %" G_GUINT64_FORMAT ": %s", self->position,
      first_line);
  /* counted now, not with the read's other counters, so a bus handler sees it */
  GST_OBJECT_LOCK (self);
  self->rtsp_messages++;
  GST_OBJECT_UNLOCK (self);
  s = gst_structure_new ("vigil-rtsp-message", "first-line", G_TYPE_STRING, first_line,
      "status", G_TYPE_INT, status, "cseq", G_TYPE_INT, cseq >= 0 ? (gint) cseq : -1, NULL);
  g_free (first_line);
  gst_element_post_message (GST_ELEMENT_CAST (self),
      gst_message_new_element (GST_OBJECT_CAST (self), s));
}

/* Skip @length garbage bytes at @p. FALSE when past the limit: the stream failed. */
static gboolean
skip_garbage (VigilInterleave * self, Chunk * chunk, const guint8 * p, gsize length)
{
  if (!self->in_garbage) {
    GST_DEBUG_OBJECT (self, "garbage at %" G_GUINT64_FORMAT " (first byte 0x%02x)",
        self->position, p[0]);
    if (!self->warned_garbage) {
      self->warned_garbage = TRUE;
      GST_ELEMENT_WARNING (self, STREAM, DEMUX,
          ("Skipping bytes that are not RTSP interleaved data."),
          ("First at stream offset %" G_GUINT64_FORMAT " (byte 0x%02x); skipping to the "
              "next plausible '$' frame. Warned once.", self->position, p[0]));
    }
  }
  self->in_garbage = TRUE;
  self->discont = TRUE;
  self->garbage_run += length;
  chunk->tally.garbage_bytes += length;
  if (chunk->max_garbage > 0 && self->garbage_run > chunk->max_garbage) {
    self->failed = TRUE;
    return FALSE;
  }
  return TRUE;
}

/* Posted by chain once the counters include the garbage, so a bus handler sees them. */
static void
post_garbage_error (VigilInterleave * self, guint64 max_garbage)
{
  GST_ELEMENT_ERROR (self, STREAM, WRONG_TYPE,
      ("not an RTSP interleaved stream (%" G_GUINT64_FORMAT " bytes without a valid frame)",
          self->garbage_run),
      ("More than max-garbage=%" G_GUINT64_FORMAT " bytes since the last '$' frame or RTSP "
          "message, at stream offset %" G_GUINT64_FORMAT ".", max_garbage,
          self->position));
}

static void
found_unit (VigilInterleave * self)
{
  if (G_UNLIKELY (self->in_garbage)) {
    GST_DEBUG_OBJECT (self, "back in sync at %" G_GUINT64_FORMAT " after %" G_GUINT64_FORMAT
        " bytes of garbage", self->position, self->garbage_run);
    self->in_garbage = FALSE;
    self->garbage_run = 0;
  }
}

/* Parse bytes [@off, @end) of @buf, mapped at @data. Packets wholly inside are sub-buffers of
 * @buf. FALSE past the garbage limit. */
static gboolean
parse (VigilInterleave * self, Chunk * chunk, GstBuffer * buf, const guint8 * data, gsize off,
    gsize end)
{
  while (off < end) {
    gsize avail = end - off;
    gsize n;
    Unit unit;

    switch (self->state) {
      case STATE_SKIP:
        n = MIN (avail, self->remaining);
        self->remaining -= n;
        if (self->remaining == 0)
          self->state = STATE_BOUNDARY;
        break;
      case STATE_RTP_BODY:
        n = MIN (avail, self->remaining);
        gst_adapter_push (self->adapter,
            gst_buffer_copy_region (buf, GST_BUFFER_COPY_MEMORY, off, n));
        self->remaining -= n;
        if (self->remaining == 0) {
          GstBuffer *packet = gst_adapter_take_buffer (self->adapter,
              gst_adapter_available (self->adapter));
          guint8 ssrc[4];

          if (gst_buffer_extract (packet, 8, ssrc, 4) == 4) {
            self->ssrc = GST_READ_UINT32_BE (ssrc);
            self->have_ssrc = TRUE;
          }
          emit (self, chunk, packet);
          self->state = STATE_BOUNDARY;
        }
        break;
      case STATE_BOUNDARY:
      default:
        unit = classify (self, chunk, data + off, avail);
        n = unit.length;
        switch (unit.kind) {
          case UNIT_NEED_MORE:
            self->need = unit.length;
            gst_adapter_push (self->adapter,
                gst_buffer_copy_region (buf, GST_BUFFER_COPY_MEMORY, off, avail));
            return TRUE;
          case UNIT_GARBAGE:
            if (!skip_garbage (self, chunk, data + off, n)) {
              self->position += n;
              return FALSE;
            }
            break;
          case UNIT_RTSP:
            found_unit (self);
            post_rtsp_message (self, data + off, n);
            if (unit.body > 0) {
              self->state = STATE_SKIP;
              self->remaining = unit.body;
            }
            break;
          case UNIT_FRAME:
            found_unit (self);
            if (unit.channel != chunk->rtp_channel) {
              if (unit.channel == chunk->rtcp_channel)
                chunk->tally.rtcp_packets++;
              else
                chunk->tally.other_packets++;
              if (unit.body > 0) {
                self->state = STATE_SKIP;
                self->remaining = unit.body;
              }
            } else if (unit.body == 0) {
              GST_DEBUG_OBJECT (self, "empty RTP frame at %" G_GUINT64_FORMAT, self->position);
            } else if (unit.body <= avail - FRAME_HEADER) {
              const guint8 *packet = data + off + FRAME_HEADER;

              if (unit.body >= 12) {
                self->ssrc = GST_READ_UINT32_BE (packet + 8);
                self->have_ssrc = TRUE;
              }
              emit (self, chunk, gst_buffer_copy_region (buf, GST_BUFFER_COPY_MEMORY,
                      off + FRAME_HEADER, unit.body));
              n += unit.body;
            } else {
              self->state = STATE_RTP_BODY;
              self->remaining = unit.body;
            }
            break;
        }
        break;
    }
    off += n;
    self->position += n;
  }
  return TRUE;
}

/* --- pads ------------------------------------------------------------------------------ */

/* Caps from the property, "application/x-rtp" when unset; NULL (error posted) when invalid. */
static GstCaps *
output_caps (VigilInterleave * self)
{
  GstCaps *caps = NULL;
  gchar *string;

  GST_OBJECT_LOCK (self);
  string = g_strdup (self->caps_string);
  if (self->caps != NULL)
    caps = gst_caps_ref (self->caps);
  self->caps_changed = FALSE;
  GST_OBJECT_UNLOCK (self);

  if (string == NULL)
    caps = gst_static_pad_template_get_caps (&src_template);
  else if (caps == NULL || !gst_caps_is_fixed (caps))
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("Invalid \"caps\" property."),
        ("\"%s\" is not %s caps.", string, caps == NULL ? "valid" : "fixed"));
  g_free (string);
  if (caps != NULL && !gst_caps_is_fixed (caps))
    gst_clear_caps (&caps);
  return caps;
}

/* Sticky events in the order downstream needs them: stream-start, caps, segment. */
static gboolean
push_caps (VigilInterleave * self)
{
  GstCaps *caps;
  const GstStructure *s;
  gboolean ok;
  GstEvent *start = gst_pad_get_sticky_event (self->srcpad, GST_EVENT_STREAM_START, 0);

  if (start == NULL) {
    /* upstream sent none (a hand-made chain); caps must not come first */
    gchar *stream_id = gst_pad_create_stream_id (self->srcpad, GST_ELEMENT_CAST (self), NULL);

    start = gst_event_new_stream_start (stream_id);
    gst_event_set_group_id (start, gst_util_group_id_next ());
    g_free (stream_id);
    gst_pad_push_event (self->srcpad, start);
  } else {
    gst_event_unref (start);
  }
  caps = output_caps (self);
  if (caps == NULL)
    return FALSE;
  s = gst_caps_get_structure (caps, 0);
  if (!gst_structure_get_int (s, "payload", &self->payload_type))
    self->payload_type = -1;
  GST_DEBUG_OBJECT (self, "caps %" GST_PTR_FORMAT, caps);
  ok = gst_pad_push_event (self->srcpad, gst_event_new_caps (caps));
  gst_caps_unref (caps);
  self->need_caps = FALSE;
  return ok;
}

static gboolean
push_time_segment (VigilInterleave * self, guint32 seqnum)
{
  GstSegment segment;
  GstEvent *event;

  gst_segment_init (&segment, GST_FORMAT_TIME);
  event = gst_event_new_segment (&segment);
  if (seqnum != GST_SEQNUM_INVALID)
    gst_event_set_seqnum (event, seqnum);
  self->need_segment = FALSE;
  return gst_pad_push_event (self->srcpad, event);
}

static GstFlowReturn
vigil_interleave_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  VigilInterleave *self = VIGIL_INTERLEAVE (parent);
  Chunk chunk = { 0 };
  GstMapInfo map;
  gsize off = 0;
  gboolean ok = TRUE;

  (void) pad;

  if (G_UNLIKELY (self->failed)) {
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }

  GST_OBJECT_LOCK (self);
  chunk.rtp_channel = self->rtp_channel;
  chunk.rtcp_channel = self->rtcp_channel;
  chunk.max_garbage = self->max_garbage;
  if (G_UNLIKELY (self->caps_changed))
    self->need_caps = TRUE;
  GST_OBJECT_UNLOCK (self);

  if (G_UNLIKELY (self->need_caps) && !push_caps (self) && self->need_caps) {
    gst_buffer_unref (buf);
    return GST_FLOW_NOT_NEGOTIATED;
  }
  if (G_UNLIKELY (self->need_segment))
    push_time_segment (self, GST_SEQNUM_INVALID);

  if (G_UNLIKELY (!gst_buffer_map (buf, &map, GST_MAP_READ))) {
    GST_ELEMENT_ERROR (self, RESOURCE, READ, (NULL), ("Cannot map an input buffer."));
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }
  chunk.pts = GST_BUFFER_PTS (buf);
  chunk.dts = GST_BUFFER_DTS (buf);
  chunk.tally.bytes = map.size;

  /* The last read ended inside a unit's first bytes (a frame header, an RTSP head, a '$' to
   * check): join them to the start of this read, a bounded copy, and parse that. */
  while (ok && off < map.size && self->state == STATE_BOUNDARY
      && gst_adapter_available (self->adapter) > 0) {
    gsize kept = gst_adapter_available (self->adapter);
    gsize n = MIN (map.size - off, MAX (HEAD_MERGE, self->need > kept ? self->need - kept : 0));
    GstBuffer *joined;
    GstMapInfo joined_map;

    GST_LOG_OBJECT (self, "joining %" G_GSIZE_FORMAT " kept bytes to %" G_GSIZE_FORMAT
        " new ones", kept, n);
    gst_adapter_push (self->adapter,
        gst_buffer_copy_region (buf, GST_BUFFER_COPY_MEMORY, off, n));
    joined = gst_adapter_take_buffer (self->adapter, gst_adapter_available (self->adapter));
    off += n;
    if (G_UNLIKELY (!gst_buffer_map (joined, &joined_map, GST_MAP_READ))) {
      GST_ELEMENT_ERROR (self, RESOURCE, READ, (NULL), ("Cannot map a joined buffer."));
      gst_buffer_unref (joined);
      gst_buffer_unmap (buf, &map);
      gst_buffer_unref (buf);
      if (chunk.list != NULL)
        gst_buffer_list_unref (chunk.list);
      return GST_FLOW_ERROR;
    }
    ok = parse (self, &chunk, joined, joined_map.data, 0, joined_map.size);
    gst_buffer_unmap (joined, &joined_map);
    gst_buffer_unref (joined);
  }
  if (ok && off < map.size)
    ok = parse (self, &chunk, buf, map.data, off, map.size);
  gst_buffer_unmap (buf, &map);
  gst_buffer_unref (buf);

  GST_OBJECT_LOCK (self);
  self->bytes += chunk.tally.bytes;
  self->packets += chunk.tally.packets;
  self->rtcp_packets += chunk.tally.rtcp_packets;
  self->other_packets += chunk.tally.other_packets;
  self->garbage_bytes += chunk.tally.garbage_bytes;
  if (ok && chunk.list != NULL)
    self->lists++;
  GST_OBJECT_UNLOCK (self);

  if (G_UNLIKELY (!ok)) {
    post_garbage_error (self, chunk.max_garbage);
    if (chunk.list != NULL)
      gst_buffer_list_unref (chunk.list);
    return GST_FLOW_ERROR;
  }
  if (chunk.list == NULL)
    return GST_FLOW_OK;
  return gst_pad_push_list (self->srcpad, chunk.list);
}

static gboolean
vigil_interleave_sink_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  VigilInterleave *self = VIGIL_INTERLEAVE (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_STREAM_START:
      GST_DEBUG_OBJECT (self, "stream-start: new parser state");
      reset_parser (self);
      self->need_caps = TRUE;
      self->need_segment = TRUE;
      return gst_pad_push_event (self->srcpad, event);
    case GST_EVENT_CAPS:
      /* upstream's caps describe bytes; ours come from the "caps" property */
      gst_event_unref (event);
      return TRUE;
    case GST_EVENT_SEGMENT:{
      const GstSegment *segment;
      guint32 seqnum = gst_event_get_seqnum (event);

      if (self->need_caps && !push_caps (self) && self->need_caps) {
        gst_event_unref (event);
        return FALSE;
      }
      gst_event_parse_segment (event, &segment);
      if (segment->format == GST_FORMAT_TIME) {
        self->need_segment = FALSE;
        return gst_pad_push_event (self->srcpad, event);
      }
      /* BYTES from fdsrc: packets carry running time at arrival, so TIME from 0 */
      gst_event_unref (event);
      return push_time_segment (self, seqnum);
    }
    case GST_EVENT_FLUSH_STOP:
      GST_DEBUG_OBJECT (self, "flush-stop: new parser state");
      reset_parser (self);
      /* flush-stop removes the src pad's segment; upstream normally sends a new one */
      self->need_segment = TRUE;
      break;
    case GST_EVENT_EOS:{
      gsize pending = pending_bytes (self);

      if (pending > 0)
        GST_DEBUG_OBJECT (self, "EOS inside a unit: dropping it (%" G_GSIZE_FORMAT
            " bytes kept or still expected)", pending);
      reset_parser (self);
      break;
    }
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
vigil_interleave_src_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  VigilInterleave *self = VIGIL_INTERLEAVE (parent);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_CAPS:{
      GstCaps *filter, *caps = NULL, *result;

      gst_query_parse_caps (query, &filter);
      GST_OBJECT_LOCK (self);
      if (self->caps != NULL)
        caps = gst_caps_ref (self->caps);
      GST_OBJECT_UNLOCK (self);
      if (caps == NULL)
        caps = gst_pad_get_pad_template_caps (pad);
      if (filter != NULL) {
        result = gst_caps_intersect_full (filter, caps, GST_CAPS_INTERSECT_FIRST);
        gst_caps_unref (caps);
      } else {
        result = caps;
      }
      gst_query_set_caps_result (query, result);
      gst_caps_unref (result);
      return TRUE;
    }
    case GST_QUERY_LATENCY:{
      gboolean live;
      GstClockTime min_latency, max_latency;

      /* As vigilrtpstamp: packets are stamped with the running time at arrival, so this is
       * live; nothing is held back, so no latency of our own. */
      if (gst_pad_peer_query (self->sinkpad, query)) {
        gst_query_parse_latency (query, &live, &min_latency, &max_latency);
        gst_query_set_latency (query, TRUE, min_latency, max_latency);
      } else {
        gst_query_set_latency (query, TRUE, 0, GST_CLOCK_TIME_NONE);
      }
      return TRUE;
    }
    default:
      return gst_pad_query_default (pad, parent, query);
  }
}

/* --- element --------------------------------------------------------------------------- */

static GstStateChangeReturn
vigil_interleave_change_state (GstElement * element, GstStateChange transition)
{
  VigilInterleave *self = VIGIL_INTERLEAVE (element);
  GstStateChangeReturn ret;

  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
    reset_parser (self);
    self->warned_garbage = FALSE;
    self->need_caps = TRUE;
    self->need_segment = TRUE;
  }
  ret = GST_ELEMENT_CLASS (vigil_interleave_parent_class)->change_state (element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY)
    reset_parser (self);
  return ret;
}

static void
vigil_interleave_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  VigilInterleave *self = VIGIL_INTERLEAVE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_CAPS:
      g_free (self->caps_string);
      gst_clear_caps (&self->caps);
      self->caps_string = g_value_dup_string (value);
      if (self->caps_string != NULL) {
        self->caps = gst_caps_from_string (self->caps_string);
        if (self->caps == NULL)
          GST_WARNING_OBJECT (self, "invalid caps \"%s\"", self->caps_string);
      }
      self->caps_changed = TRUE;
      break;
    case PROP_RTP_CHANNEL:
      self->rtp_channel = g_value_get_uint (value);
      break;
    case PROP_RTCP_CHANNEL:
      self->rtcp_channel = g_value_get_uint (value);
      break;
    case PROP_MAX_GARBAGE:
      self->max_garbage = g_value_get_uint64 (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
vigil_interleave_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  VigilInterleave *self = VIGIL_INTERLEAVE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_CAPS:
      g_value_set_string (value, self->caps_string);
      break;
    case PROP_RTP_CHANNEL:
      g_value_set_uint (value, self->rtp_channel);
      break;
    case PROP_RTCP_CHANNEL:
      g_value_set_uint (value, self->rtcp_channel);
      break;
    case PROP_MAX_GARBAGE:
      g_value_set_uint64 (value, self->max_garbage);
      break;
    case PROP_BYTES:
      g_value_set_uint64 (value, self->bytes);
      break;
    case PROP_PACKETS:
      g_value_set_uint64 (value, self->packets);
      break;
    case PROP_RTCP_PACKETS:
      g_value_set_uint64 (value, self->rtcp_packets);
      break;
    case PROP_OTHER_PACKETS:
      g_value_set_uint64 (value, self->other_packets);
      break;
    case PROP_RTSP_MESSAGES:
      g_value_set_uint64 (value, self->rtsp_messages);
      break;
    case PROP_GARBAGE_BYTES:
      g_value_set_uint64 (value, self->garbage_bytes);
      break;
    case PROP_LISTS:
      g_value_set_uint64 (value, self->lists);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
vigil_interleave_finalize (GObject * object)
{
  VigilInterleave *self = VIGIL_INTERLEAVE (object);

  g_object_unref (self->adapter);
  g_free (self->caps_string);
  gst_clear_caps (&self->caps);
  G_OBJECT_CLASS (vigil_interleave_parent_class)->finalize (object);
}

static void
install_counter (GObjectClass * gobject_class, guint prop_id, const gchar * name,
    const gchar * nick, const gchar * blurb)
{
  g_object_class_install_property (gobject_class, prop_id,
      g_param_spec_uint64 (name, nick, blurb, 0, G_MAXUINT64, 0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
}

static void
vigil_interleave_class_init (VigilInterleaveClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  gobject_class->set_property = vigil_interleave_set_property;
  gobject_class->get_property = vigil_interleave_get_property;
  gobject_class->finalize = vigil_interleave_finalize;

  g_object_class_install_property (gobject_class, PROP_CAPS,
      g_param_spec_string ("caps", "Caps",
          "Caps of the RTP packets sent out, from the SDP (fixed caps, e.g. "
          "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=96,...); "
          "unset: application/x-rtp", NULL, rw));
  g_object_class_install_property (gobject_class, PROP_RTP_CHANNEL,
      g_param_spec_uint ("rtp-channel", "RTP channel",
          "Interleaved channel whose frames are sent out", 0, 255, DEFAULT_RTP_CHANNEL, rw));
  g_object_class_install_property (gobject_class, PROP_RTCP_CHANNEL,
      g_param_spec_uint ("rtcp-channel", "RTCP channel",
          "Interleaved channel of RTCP (counted and dropped)", 0, 255, DEFAULT_RTCP_CHANNEL,
          rw));
  g_object_class_install_property (gobject_class, PROP_MAX_GARBAGE,
      g_param_spec_uint64 ("max-garbage", "Max garbage",
          "Post an error after this many bytes without a valid frame or RTSP message "
          "(0: never)", 0, G_MAXUINT64, DEFAULT_MAX_GARBAGE, rw));
  install_counter (gobject_class, PROP_BYTES, "bytes", "Bytes", "Bytes received");
  install_counter (gobject_class, PROP_PACKETS, "packets", "Packets", "RTP packets sent out");
  install_counter (gobject_class, PROP_RTCP_PACKETS, "rtcp-packets", "RTCP packets",
      "Frames on rtcp-channel (dropped)");
  install_counter (gobject_class, PROP_OTHER_PACKETS, "other-packets", "Other packets",
      "Frames on any other channel (dropped)");
  install_counter (gobject_class, PROP_RTSP_MESSAGES, "rtsp-messages", "RTSP messages",
      "RTSP replies and requests skipped (each posted as vigil-rtsp-message)");
  install_counter (gobject_class, PROP_GARBAGE_BYTES, "garbage-bytes", "Garbage bytes",
      "Bytes that were neither a frame nor an RTSP message (skipped)");
  install_counter (gobject_class, PROP_LISTS, "lists", "Lists",
      "Buffer lists pushed (one per read that completed a packet)");

  element_class->change_state = GST_DEBUG_FUNCPTR (vigil_interleave_change_state);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "Vigil RTSP interleaved parser",
      "Codec/Demuxer/Network/RTP",
      "Splits an RTSP-over-TCP byte stream (fdsrc on the session's socket) into RTP packets, "
      "dropping RTCP and skipping RTSP messages", "Vigil");
}

static void
vigil_interleave_init (VigilInterleave * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, GST_DEBUG_FUNCPTR (vigil_interleave_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (vigil_interleave_sink_event));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad, GST_DEBUG_FUNCPTR (vigil_interleave_src_query));
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->adapter = gst_adapter_new ();
  self->rtp_channel = DEFAULT_RTP_CHANNEL;
  self->rtcp_channel = DEFAULT_RTCP_CHANNEL;
  self->max_garbage = DEFAULT_MAX_GARBAGE;
  self->payload_type = -1;
  self->need_caps = TRUE;
  self->need_segment = TRUE;
  reset_parser (self);
}
