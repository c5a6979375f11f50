package mkv

// Element IDs used by the reader and by writers of Matroska output.
const (
	IDEBML           = 0x1A45DFA3
	IDDocType        = 0x4282
	IDSegment        = 0x18538067
	IDSeekHead       = 0x114D9B74
	IDInfo           = 0x1549A966
	IDTimecodeScale  = 0x2AD7B1
	IDSegmentUID     = 0x73A4
	IDDuration       = 0x4489
	IDTracks         = 0x1654AE6B
	IDTrackEntry     = 0xAE
	IDTrackNumber    = 0xD7
	IDTrackUID       = 0x73C5
	IDTrackType      = 0x83
	IDCodecID        = 0x86
	IDCodecPrivate   = 0x63A2
	IDName           = 0x536E
	IDDefaultDur     = 0x23E383
	IDVideo          = 0xE0
	IDPixelWidth     = 0xB0
	IDPixelHeight    = 0xBA
	IDAudio          = 0xE1
	IDSamplingFreq   = 0xB5
	IDChannels       = 0x9F
	IDBitDepth       = 0x6264
	IDCluster        = 0x1F43B675
	IDTimecode       = 0xE7
	IDSilentTracks   = 0x5854
	IDPosition       = 0xA7
	IDPrevSize       = 0xAB
	IDSimpleBlock    = 0xA3
	IDBlockGroup     = 0xA0
	IDBlock          = 0xA1
	IDBlockDuration  = 0x9B
	IDReferenceBlock = 0xFB
	IDEncryptedBlock = 0xAF
	IDCues           = 0x1C53BB6B
	IDChapters       = 0x1043A770
	IDAttachments    = 0x1941A469
	IDTags           = 0x1254C367
	IDTag            = 0x7373
	IDTargets        = 0x63C0
	IDTagTrackUID    = 0x63C5
	IDTagEditionUID  = 0x63C9
	IDTagChapterUID  = 0x63C4
	IDTagAttachUID   = 0x63C6
	IDSimpleTag      = 0x67C8
	IDTagName        = 0x45A3
	IDTagString      = 0x4487
	IDTagBinary      = 0x4485
	IDVoid           = 0xEC
	IDCRC32          = 0xBF
)

// isSegmentChild reports whether id may appear directly inside a Segment.
func isSegmentChild(id uint32) bool {
	switch id {
	case IDSeekHead, IDInfo, IDTracks, IDCluster, IDCues, IDChapters, IDAttachments, IDTags, IDVoid, IDCRC32:
		return true
	}
	return false
}

// isClusterChild reports whether id may appear directly inside a Cluster.
func isClusterChild(id uint32) bool {
	switch id {
	case IDTimecode, IDSilentTracks, IDPosition, IDPrevSize, IDSimpleBlock, IDBlockGroup, IDEncryptedBlock, IDVoid, IDCRC32:
		return true
	}
	return false
}
