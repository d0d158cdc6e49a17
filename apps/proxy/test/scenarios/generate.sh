#!/bin/sh
# Writes the sipp scenario files of this directory. Run it here after changing it: sh generate.sh
set -e
# SDP media ports come from `-key mport N` (sipp itself binds -mp, so a test receiver could not)
HDR='<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">'
sdp() {
cat <<EOF
      v=0
      o=pinhole 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio $1 RTP/AVP 0
      a=rtpmap:0 PCMU/8000
EOF
}
invite() {
cat <<EOF
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Subject: Pinhole test
EOF
printf '%s' "$1"
cat <<EOF
      Content-Type: application/sdp
      Content-Length: [len]

$(sdp '[mport]')

    ]]>
  </send>
EOF
}
ack() {
cat <<EOF
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: $1 ACK
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
EOF
}
bye() {
cat <<EOF
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: $1 BYE
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
EOF
}
reinvite() {
cat <<EOF
  <send retrans="500">
    <![CDATA[

      INVITE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: $1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
EOF
printf '%s' "$3"
cat <<EOF
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=pinhole 1 $1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio $2 RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
EOF
}
resp() { # $1 code+reason $2 withsdp(0/1) $3 extra $4 port $5 c= line
cat <<EOF
  <send>
    <![CDATA[

      SIP/2.0 $1
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
EOF
printf '%s' "$3"
if [ "$2" = 1 ]; then
cat <<EOF
      Content-Type: application/sdp
      Content-Length: [len]

$(sdp "${4:-[mport]}" | sed "s/c=IN IP.media_ip_type. .media_ip./${5:-c=IN IP[media_ip_type] [media_ip]}/")

EOF
else
cat <<EOF
      Content-Length: 0

EOF
fi
cat <<EOF
    ]]>
  </send>
EOF
}
uas_byes() {
cat <<EOF
  <recv request="BYE"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
EOF
}
reinv_loop() { # $1 extra headers on the 200, $2 SDP port of the answer
cat <<EOF
  <recv request="ACK" crlf="true"/>
  <label id="loop"/>
  <recv request="INVITE" optional="true" next="reinv"/>
  <recv request="BYE" next="bye"/>
  <label id="reinv"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
EOF
printf '%s' "$1"
cat <<EOF
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=pinhole 1 2 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio $2 RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK" crlf="true" next="loop"/>
  <label id="bye"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
EOF
}
plain_ack() { # ACK for a non-2xx final response (same branch as the INVITE: [last_Via:])
cat <<'EOF'
  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
EOF
}
close() { echo '  <timewait milliseconds="500"/>'; echo '</scenario>'; }
R200='  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>'

{ echo "$HDR"; echo '<scenario name="pinhole UAC: basic call with SDP, BYE after the pause (-d)">'
invite ''; echo "$R200"; ack 1; echo '  <pause/>'; bye 2; close; } > uac-basic.xml

{ echo "$HDR"; echo '<scenario name="pinhole UAS: basic call, 180 then 200 with SDP, waits for BYE">'
echo '  <recv request="INVITE" rrs="true"/>'
resp '180 Ringing' 0 ''; resp '200 OK' 1 ''
echo '  <recv request="ACK" rtd="true" crlf="true"/>'
uas_byes; close; } > uas-basic.xml

{ echo "$HDR"; echo '<scenario name="pinhole UAS: early media, 183 with SDP, pause (-d), then 200 with SDP">'
echo '  <recv request="INVITE" rrs="true"/>'
resp '183 Session Progress' 1 ''; echo '  <pause/>'; resp '200 OK' 1 ''
echo '  <recv request="ACK" rtd="true" crlf="true"/>'
uas_byes; close; } > uas-early-media.xml

{ echo "$HDR"; echo '<scenario name="pinhole UAC: INVITE, 180, pause (-d), CANCEL, 200, 487, ACK">'
invite ''
cat <<'EOF'
  <recv response="100" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="180"/>
  <pause/>
  <send>
    <![CDATA[

      CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
  <recv response="487"/>
EOF
plain_ack; close; } > uac-cancel.xml

{ echo "$HDR"; echo '<scenario name="pinhole UAS: 183 with SDP, 180, never answers; CANCEL gets 200 and 487, then ACK">'
echo '  <recv request="INVITE" rrs="true"/>'
resp '183 Session Progress' 1 ''; resp '180 Ringing' 0 ''
cat <<'EOF'
  <recv request="CANCEL"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <send>
    <![CDATA[

      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: 1 INVITE
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
EOF
close; } > uas-ring.xml

# A losing fork branch may be cancelled right after its first provisional: it sends only one.
{ echo "$HDR"; echo '<scenario name="pinhole UAS (losing fork branch): 183 with SDP, never answers; CANCEL gets 200 and 487, then ACK">'
echo '  <recv request="INVITE" rrs="true"/>'
resp '183 Session Progress' 1 ''
cat <<'EOF'
  <recv request="CANCEL"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <send>
    <![CDATA[

      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: 1 INVITE
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
EOF
close; } > uas-fork-loser.xml

{ echo "$HDR"; echo '<scenario name="pinhole UAC: INVITE, ringing, the proxy gives up (Timer C): 408 or 487, ACK">'
invite ''
cat <<'EOF'
  <recv response="100" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="487" optional="true" next="ack"/>
  <recv response="408"/>
  <label id="ack"/>
EOF
plain_ack; close; } > uac-noanswer.xml

{ echo "$HDR"; echo '<scenario name="pinhole UAS: 183 with SDP, pause (-d), then 486 Busy Here">'
echo '  <recv request="INVITE" rrs="true"/>'
resp '183 Session Progress' 1 ''; echo '  <pause/>'; resp '486 Busy Here' 0 ''
echo '  <recv request="ACK" crlf="true"/>'
close; } > uas-486.xml

{ echo "$HDR"; echo '<scenario name="pinhole UAC: INVITE answered 486 Busy Here, ACK">'
invite ''
cat <<'EOF'
  <recv response="100" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="486"/>
EOF
plain_ack; close; } > uac-486.xml

ST='      Supported: timer
      Session-Expires: [se];refresher=uac
      Min-SE: [se]
'
RST='  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>'
{ echo "$HDR"; echo '<scenario name="pinhole UAC: session timer of [se] s (-key se N), re-INVITE refresh after each pause (-d), twice, then BYE">'
invite "$ST"; echo "$RST"
ack 1; echo '  <pause/>'; reinvite 2 '[mport]' "$ST"; ack 2; echo '  <pause/>'; reinvite 3 '[mport]' "$ST"; ack 3; echo '  <pause/>'; bye 4; close; } > uac-session-timer.xml

{ echo "$HDR"; echo '<scenario name="pinhole UAC: session timer of [se] s negotiated, never refreshed, BYE after the pause (-d)">'
invite "$ST"; echo "$RST"; ack 1; echo '  <pause/>'; bye 2; close; } > uac-session-timer-norefresh.xml

UST='      Require: timer
      Supported: timer
      Session-Expires: [se];refresher=uac
'
{ echo "$HDR"; echo '<scenario name="pinhole UAS: session timer of [se] s answered with Require: timer; accepts re-INVITEs until BYE">'
echo '  <recv request="INVITE" rrs="true"/>'
resp '180 Ringing' 0 ''; resp '200 OK' 1 "$UST"; reinv_loop "$UST" '[mport]'; close; } > uas-session-timer.xml

{ echo "$HDR"; echo '<scenario name="pinhole UAC: call, pause (-d), re-INVITE moving media to [newport] (-key newport N), pause, BYE">'
invite ''; echo "$RST"
ack 1; echo '  <pause/>'; reinvite 2 '[newport]' ''; ack 2; echo '  <pause/>'; bye 3; close; } > uac-reinvite-move.xml

{ echo "$HDR"; echo '<scenario name="pinhole UAS: answers the call, then answers re-INVITEs with media moved to [newport] (-key newport N), until BYE">'
echo '  <recv request="INVITE" rrs="true"/>'
resp '180 Ringing' 0 ''; resp '200 OK' 1 ''; reinv_loop '' '[newport]'; close; } > uas-reinvite.xml

{ echo "$HDR"; echo '<scenario name="pinhole bench UAC: INVITE with SDP, 100, 180, 200, ACK, pause, BYE, 200 (the built-in uac, with route sets)">'
invite ''; echo "$RST"; ack 1
cat <<'EOF'
  <!-- The hold (500 ms, the bench's HOLD_MS). A 180 that a multi-process proxy relays after
       the 200 (Kamailio with several children reorders them under load) is absorbed here
       instead of aborting the call as an unexpected message. The hold then goes on: a BYE sent
       at once could reach the callee before the ACK that another process of the proxy is
       relaying (the callee would abort the call on the late ACK, and stop one call short). -->
  <recv response="180" timeout="500" ontimeout="held"/>
  <pause milliseconds="500"/>
  <label id="held"/>
EOF
bye 2
echo '  <ResponseTimeRepartition value="10, 20, 30, 40, 50, 100, 150, 200"/>'
echo '  <CallLengthRepartition value="10, 50, 100, 500, 1000, 5000, 10000"/>'; echo '</scenario>'; } > uac-bench.xml

{ echo "$HDR"; echo '<scenario name="pinhole bench UAS: 180, 200 with SDP on a per-call media port and address (-inf lines PORT;IPV4;), ACK, BYE, 200 (the built-in uas)">'
echo '  <recv request="INVITE" rrs="true"/>'
resp '180 Ringing' 0 ''; resp '200 OK' 1 '' '[field0]' 'c=IN IP4 [field1]'
echo '  <recv request="ACK" crlf="true"/>'
uas_byes; echo '  <timewait milliseconds="4000"/>'; echo '</scenario>'; } > uas-bench.xml

{ echo "$HDR"; echo '<scenario name="pinhole UAC: call a forked target; provisionals from any branch in any order, then 200, BYE after the pause (-d)">'
invite ''
cat <<'EOF'
  <label id="prov"/>
  <recv response="100" optional="true" next="prov"/>
  <recv response="180" optional="true" next="prov"/>
  <recv response="183" optional="true" next="prov"/>
  <recv response="200" rtd="true" rrs="true"/>
EOF
ack 1; echo '  <pause/>'; bye 2; close; } > uac-fork.xml
